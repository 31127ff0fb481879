"""`kartdata shard / verify / info` as a user runs them: real subprocesses."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kartdata import synth
from kartdata.manifest import Manifest, orphans
from kartdata.schema import (
    CONTROLS_FILE,
    STRATA,
    ClassThresholds,
    frame_filename,
    is_recovery,
    stratum_name,
)
from kartdata.sources import discover


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KARTKIT_CACHE": str(tmp / "cache"), **extra}


def kartdata(tmp: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kartdata.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=popen.pop("env", None) or _env(tmp),  # type: ignore[arg-type]
        **popen,  # type: ignore[arg-type]
    )


def test_shard_info_verify_round(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    synth.make_native(rec / "a", 12, width=64, height=48)
    synth.make_ctr(rec / "ctr", 10, mode="A")
    ds = tmp_path / "ds"
    r = kartdata(tmp_path, "shard", str(rec), "--out", str(ds), "--trust-pickle", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "added 2 session(s)" in r.stdout and "22 frames" in r.stdout
    info = json.loads(kartdata(tmp_path, "info", str(ds), "--json").stdout)
    assert info["frames"] == 22 and len(info["sessions"]) == 2
    classes = ClassThresholds()
    expected = dict.fromkeys(STRATA, 0)
    for src in discover([rec], trust_pickle=True):
        for f in src.frames():
            expected[stratum_name(classes.classify(f.pad.x), is_recovery(f.tags))] += 1
    # CTR-AI mode A is recovery data: the recovery strata hold its frames
    assert sum(n for st, n in expected.items() if st.endswith("-recovery")) == 10
    assert info["strata"] == expected
    text = kartdata(tmp_path, "info", str(ds)).stdout
    assert "22 frames in" in text and "crash_cove" in text
    v = kartdata(tmp_path, "verify", str(ds))
    assert v.returncode == 0 and v.stdout.startswith("ok: ")
    fast = kartdata(tmp_path, "verify", "--no-hash", str(ds))
    assert fast.returncode == 0 and "22 records" in fast.stdout and "not re-hashed" in fast.stdout
    m = Manifest.load(str(ds))
    shard0 = ds / m.shards[0].path
    data = bytearray(shard0.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only re-hashing sees it
    shard0.write_bytes(bytes(data))
    assert kartdata(tmp_path, "verify", "--no-hash", str(ds)).returncode == 0
    v = kartdata(tmp_path, "verify", str(ds))
    assert v.returncode == 1 and f"error: {m.shards[0].path}" in v.stderr
    shard0.write_bytes(b"not a shard")
    for args in (["verify"], ["verify", "--no-hash"]):
        v = kartdata(tmp_path, *args, str(ds))
        assert v.returncode == 1 and f"error: {m.shards[0].path}" in v.stderr, args
        assert "Traceback" not in v.stderr


HOOKS = Path(__file__).with_name("shard_hooks.py")


def _wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sharder never reached the pause point"
        time.sleep(0.05)


def _shard_killed_at(tmp: Path, point: str, args: list[str]) -> None:
    """Run ``kartdata`` (through the pause-point helper) until ``point``, then
    kill -9 its whole process group, workers included."""
    flag = tmp / f"paused-{point}"
    proc = subprocess.Popen(
        [sys.executable, str(HOOKS), *args],
        env=_env(tmp, SHARD_KILL_AT=f"{point}:30:{flag}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_for(flag, proc)
        if point == "record":
            # the run has finished some shards and is half way through others
            assert any(n.endswith(".tmp") for n in os.listdir(tmp / "ds" / "shards"))
        elif point == "before-manifest":
            assert (tmp / "ds" / "manifest.json.tmp").exists()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("point", ["record", "before-manifest", "after-manifest"])
def test_kill_9_then_rerun(point: str, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    first = synth.make_native(rec / "first", 10, width=64, height=48, seed=1)
    ds = tmp_path / "ds"
    assert (
        kartdata(tmp_path, "shard", str(first), "--out", str(ds), "--workers", "0").returncode == 0
    )
    before = (ds / "manifest.json").read_bytes()
    synth.make_native(rec / "second", 40, width=64, height=48, seed=2, recovery_share=0.3)
    synth.make_tensorkart(rec / "third", 40, width=64, height=48, seed=3)
    args = ["shard", str(rec), "--out", str(ds), "--workers", "2", "--shard-mb", "0.02"]
    _shard_killed_at(tmp_path, point, args)

    m = Manifest.load(str(ds))
    if point == "after-manifest":
        # the run was complete when it died: all of it is in, nothing left over
        assert (ds / "manifest.json").read_bytes() != before
        assert m.frames == 90 and m.generation == 2 and orphans(str(ds), m) == []
    else:
        assert (ds / "manifest.json").read_bytes() == before
        assert m.frames == 10 and m.generation == 1
        assert orphans(str(ds), m)  # leftovers, not referenced
    v = kartdata(tmp_path, "verify", str(ds))
    assert v.returncode == 0 and v.stdout.startswith("ok: "), v.stderr

    r = kartdata(tmp_path, "shard", str(rec), "--out", str(ds), "--workers", "2")
    assert r.returncode == 0, r.stderr
    added = 0 if point == "after-manifest" else 2
    assert f"added {added} session(s), skipped {3 - added} already present" in r.stdout
    m = Manifest.load(str(ds))
    assert m.frames == 90 and m.generation == 2 and orphans(str(ds), m) == []
    assert not (ds / "manifest.json.tmp").exists()
    assert sorted(os.listdir(ds / "shards")) == sorted(
        Path(p).name for s in m.shards for p in (s.path, s.index)
    )
    assert kartdata(tmp_path, "verify", str(ds)).returncode == 0


# -- bad input: one line naming the file and line/frame, exit != 0, nothing added --


def _native(tmp: Path) -> Path:
    return synth.make_native(tmp / "bad", 12, width=64, height=48, seed=9)


def _edit_controls(session: Path, line: int, column: str, value: str) -> None:
    table = session / CONTROLS_FILE
    rows = list(csv.reader(table.read_text().splitlines()))
    rows[line - 1][rows[0].index(column)] = value
    table.write_text("".join(",".join(r) + "\n" for r in rows))


def _missing_image(tmp: Path) -> tuple[Path, str]:
    s = _native(tmp)
    (s / frame_filename(5)).unlink()
    return s, r"00000005\.png: frame 5: image file is missing"


def _corrupt_image(tmp: Path) -> tuple[Path, str]:
    s = _native(tmp)
    (s / frame_filename(6)).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return s, r"00000006\.png: frame 6: corrupt or truncated image"


def _truncated_image(tmp: Path) -> tuple[Path, str]:
    s = _native(tmp)
    img = s / frame_filename(7)
    img.write_bytes(img.read_bytes()[:200])
    return s, r"00000007\.png: frame 7: corrupt or truncated image"


def _bad_row(tmp: Path) -> tuple[Path, str]:
    s = synth.make_tensorkart(tmp / "bad", 12, width=64, height=48)
    lines = (s / "data.csv").read_text().splitlines(keepends=True)
    lines[3] = "img_3.png,0.5\n"
    (s / "data.csv").write_text("".join(lines))
    return s, r"data\.csv:4: 2 fields, expected 6"


def _nan_control(tmp: Path) -> tuple[Path, str]:
    s = _native(tmp)
    _edit_controls(s, 4, "x", "nan")
    return s, r"controls\.csv:4: axis x='nan'"


def _out_of_range(tmp: Path) -> tuple[Path, str]:
    s = synth.make_tensorkart(tmp / "bad", 12, width=64, height=48)
    lines = (s / "data.csv").read_text().splitlines(keepends=True)
    lines[8] = "img_8.png,1.7,0,1,0,0\n"
    (s / "data.csv").write_text("".join(lines))
    return s, r"data\.csv:9: x='1\.7' is not a number in \[-1, 1\]"


def _escaping_path(tmp: Path) -> tuple[Path, str]:
    s = synth.make_tensorkart(tmp / "bad", 12, width=64, height=48)
    lines = (s / "data.csv").read_text().splitlines(keepends=True)
    lines[2] = "samples/..,0.1,0,1,0,0\n"
    (s / "data.csv").write_text("".join(lines))
    return s, r"data\.csv:3: image path 'samples/\.\.' escapes the session directory"


def _untrusted_pickle(tmp: Path) -> tuple[Path, str]:
    return synth.make_ctr(tmp / "bad", 5), r"_N_0\.npy: .*--trust-pickle"


def _mixed_sizes(tmp: Path) -> tuple[Path, str]:
    s = _native(tmp)
    Image.fromarray(synth.render(0.1, 9, 80, 60)).save(s / frame_filename(9))
    return s, r"00000009\.png: frame 9: image is 80x60, but the session's first frame is 64x48"


BAD_INPUTS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "missing image": _missing_image,
    "corrupt image": _corrupt_image,
    "truncated image": _truncated_image,
    "bad csv row": _bad_row,
    "nan control": _nan_control,
    "out of range control": _out_of_range,
    "path escaping": _escaping_path,
    "pickle without trust": _untrusted_pickle,
    "mixed sizes": _mixed_sizes,
}


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("good")
    s = synth.make_native(tmp / "ok", 6, width=64, height=48)
    ds = tmp / "ds"
    assert kartdata(tmp, "shard", str(s), "--out", str(ds), "--workers", "0").returncode == 0
    return ds


def _assert_one_line_error(r: subprocess.CompletedProcess[str], pattern: str) -> None:
    import re

    assert r.returncode not in (0, None), r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_adds_nothing(
    case: str, tmp_path: Path, good_dataset: Path
) -> None:
    src, pattern = BAD_INPUTS[case](tmp_path)
    before = (good_dataset / "manifest.json").read_bytes()
    shards_before = sorted(os.listdir(good_dataset / "shards"))
    # --no-validate: the validator would exclude bad images (and count them)
    # instead; here the reader itself must refuse them
    r = kartdata(
        tmp_path, "shard", str(src), "--out", str(good_dataset), "--workers", "2", "--no-validate"
    )
    _assert_one_line_error(r, pattern)
    assert (good_dataset / "manifest.json").read_bytes() == before
    assert sorted(os.listdir(good_dataset / "shards")) == shards_before


def test_unreadable_directory(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    synth.make_native(rec / "a", 3, width=32, height=24)
    locked = rec / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0o000)
    # root reads everything: run the sharder without the capabilities that let it
    # (setpriv is util-linux, on every Debian)
    prefix = (
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    )
    out = ["--out", str(tmp_path / "ds"), "--workers", "0"]
    try:
        r = subprocess.run(
            [*prefix, sys.executable, "-m", "kartdata.cli", "shard", str(rec), *out],
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(tmp_path),
        )
    finally:
        locked.chmod(0o755)
    _assert_one_line_error(r, r"rec/locked: directory is not readable")
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_validation_counts_a_corrupt_frame_instead(tmp_path: Path) -> None:
    src, _ = _corrupt_image(tmp_path)
    r = kartdata(tmp_path, "shard", str(src), "--out", str(tmp_path / "ds"), "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert "excluded by validation: corrupt 1" in r.stdout
    m = Manifest.load(str(tmp_path / "ds"))
    assert m.frames == 11 and m.excluded == {"corrupt": 1}
    assert np.sum(m.histogram["x"]["counts"]) == 11
