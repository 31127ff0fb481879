"""System faults while sharding, made real: a full disk (a 2 MiB tmpfs), a
dataset on a read-only filesystem (a read-only bind mount), a permission
refused (the writer run as root without its override of file modes), and a
worker killed by SIGKILL (what the OOM killer sends), by its pid.

Each must end ``kartdata shard`` with one line naming the path and saying
nothing was added, a non-zero exit code, no traceback, and the dataset as it
was: the same manifest bytes, no stray files, ``kartdata verify`` clean.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from kartdata.index import index_row
from kartdata.manifest import Manifest, orphans
from kartdata.schema import PAD_FIELDS, Pad, SessionMeta
from kartdata.shard.files import ShardFile
from kartdata.sources.native import SessionWriter

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs / read-only bind needs root"
)

HOOKS = Path(__file__).with_name("shard_hooks.py")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KARTKIT_CACHE": str(tmp / "cache"), **extra}


def _kartdata(
    tmp: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "kartdata.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp),
    )


def _noise_session(path: Path, n: int, seed: int) -> Path:
    """Frames of noise at the storage size: each stays ~70 KB as JPEG, so a
    few dozen fill a small disk."""
    rng = np.random.default_rng(seed)
    meta = SessionMeta(
        game="synthetic", track="noise", player="p", width=320, height=240, fps=15.0,
        created=f"2020-01-01T00:00:{seed:02d}",
    )  # fmt: skip
    with SessionWriter(path, meta) as w:
        for i in range(n):
            image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            w.write(image, Pad(x=float(np.sin(i / 5))), t_ns=i * 66_666_667)
    return path


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount at the end, newest first, whatever happened."""
    points: list[Path] = []
    yield points
    for p in reversed(points):
        subprocess.run(["umount", str(p)], check=True, timeout=30)


def _mount(points: list[Path], *args: str) -> None:
    subprocess.run(["mount", *args], check=True, timeout=30)
    if "remount" not in ",".join(args):  # a remount changes a mount, adds none
        points.append(Path(args[-1]))


def _first_generation(tmp: Path, ds: Path) -> bytes:
    """A dataset with one small session in it; its manifest's bytes."""
    small = _noise_session(tmp / "rec" / "small", 3, seed=1)
    r = _kartdata(tmp, "shard", str(small), "--out", str(ds), "--no-validate", "--workers", "0")
    assert r.returncode == 0, r.stderr
    return (ds / "manifest.json").read_bytes()


def _assert_one_line_nothing_added(r: subprocess.CompletedProcess[str], ds: Path) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    line = r.stderr[len("error: ") :].rstrip("\n")
    assert line.endswith(f"; nothing was added to the dataset {ds}") or (
        f"{ds}: shard worker" in line and line.endswith("nothing was added to the dataset")
    ), line
    return line


def _assert_as_it_was(tmp: Path, ds: Path, manifest: bytes) -> None:
    assert (ds / "manifest.json").read_bytes() == manifest
    assert orphans(str(ds), Manifest.load(str(ds))) == []
    assert not (ds / "manifest.json.tmp").exists()
    v = _kartdata(tmp, "verify", str(ds))
    assert v.returncode == 0 and v.stdout.startswith("ok: "), v.stdout + v.stderr


@pytest.mark.parametrize(
    "engine", [("--workers", "0"), ("--workers", "2"), ("--engine", "ray", "--workers", "2")],
    ids=["inline", "processes", "ray"],
)  # fmt: skip
def test_full_disk(tmp_path: Path, mounts: list[Path], engine: tuple[str, ...]) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(mounts, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    ds = disk / "ds"
    manifest = _first_generation(tmp_path, ds)
    free = shutil.disk_usage(disk).free
    big = [_noise_session(tmp_path / "rec" / f"big{i}", 25, seed=2 + i) for i in range(2)]
    r = _kartdata(tmp_path, "shard", *map(str, big), "--out", str(ds), "--no-validate", *engine)
    line = _assert_one_line_nothing_added(r, ds)
    # the shard being written when the disk filled up, and the system's reason
    assert re.match(rf"{re.escape(str(ds))}/shards/\S+\.tmp: no space left on device;", line), line
    _assert_as_it_was(tmp_path, ds, manifest)
    assert shutil.disk_usage(disk).free == free  # what the run wrote was removed


def _index_row() -> list[object]:
    return index_row("s", "noise", 0, 0, [0.0] * len(PAD_FIELDS), "straight", [], "ok")


def test_a_shard_whose_close_fills_the_disk_removes_itself(
    tmp_path: Path, mounts: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last bytes of a shard go out when it is closed: on a full disk that
    close fails after every write succeeded. The shard's writer has already let
    go of it, so the shard must clean up after itself there, and its file must
    be closed then, not by the garbage collector at exit (which printed a
    traceback past the one-line error)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(mounts, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    (disk / "shards").mkdir()
    with open(disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    shard = ShardFile(str(disk), "shards/s.tfrecord.gz", "straight", 1, "GZIP")
    shard.write(np.random.default_rng(0).bytes(2000), _index_row())
    with pytest.raises(OSError, match="No space left") as e:
        shard.close()
    assert e.value.filename == str(disk / "shards" / "s.tfrecord.gz.tmp")
    del shard
    gc.collect()
    assert unraisable == []
    assert sorted(p.name for p in (disk / "shards").iterdir()) == []


def test_read_only_filesystem(tmp_path: Path, mounts: list[Path]) -> None:
    ds = tmp_path / "ds"
    manifest = _first_generation(tmp_path, ds)
    view = tmp_path / "view"
    view.mkdir()
    _mount(mounts, "--bind", str(ds), str(view))
    _mount(mounts, "-o", "remount,bind,ro", str(view))
    new = _noise_session(tmp_path / "rec" / "new", 4, seed=5)
    r = _kartdata(tmp_path, "shard", str(new), "--out", str(view), "--no-validate")
    line = _assert_one_line_nothing_added(r, view)
    assert line.startswith(f"{view}/.lock: read-only file system;"), line
    _assert_as_it_was(tmp_path, view, manifest)


def test_permission_denied(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    manifest = _first_generation(tmp_path, ds)
    modes = {p: p.stat().st_mode for p in [ds, *ds.rglob("*")]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    # root ignores file modes through CAP_DAC_OVERRIDE: run the writer without
    # it (and without CAP_DAC_READ_SEARCH), so the modes are enforced
    no_override = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    probe = subprocess.run(
        [*no_override, sys.executable, "-c", f"open({str(ds / 'probe')!r}, 'w')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    new = _noise_session(tmp_path / "rec" / "new", 4, seed=6)
    try:
        r = _kartdata(
            tmp_path, "shard", str(new), "--out", str(ds), "--no-validate", prefix=no_override
        )
        line = _assert_one_line_nothing_added(r, ds)
        assert line.startswith(f"{ds}/.lock: permission denied;"), line
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    _assert_as_it_was(tmp_path, ds, manifest)


def test_worker_killed(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    manifest = _first_generation(tmp_path, ds)
    # one session long enough to reach the pause point, one too short: only
    # one worker ever pauses (two would race to write the one flag file)
    rec = [_noise_session(tmp_path / "rec" / f"s{n}", n, seed=10 + n) for n in (20, 3)]
    flag = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, str(HOOKS), "shard", *map(str, rec), "--out", str(ds), "--no-validate"],
        env=_env(tmp_path, SHARD_KILL_AT=f"record:5:{flag}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no worker reached its 5th record"
            time.sleep(0.05)
        pid = int(flag.read_text())
        worker = psutil.Process(pid)
        assert pid != proc.pid and worker.ppid() == proc.pid  # a worker, not the driver
        assert any(n.endswith(".tmp") for n in os.listdir(ds / "shards"))  # mid-shard
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = _assert_one_line_nothing_added(r, ds)
    assert re.fullmatch(
        rf"{re.escape(str(ds))}: shard worker \d+ \(pid {pid}\) was killed by SIGKILL "
        r"\(what the kernel's out-of-memory killer sends: see `dmesg`\); "
        r"nothing was added to the dataset",
        line,
    ), line
    _assert_as_it_was(tmp_path, ds, manifest)
    # and the driver left no worker of its process group behind
    # (a zombie has exited: it waits only for this container's init to reap it)
    left = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if _group(p.pid) == proc.pid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == [], [(p.pid, p.info) for p in left]


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
