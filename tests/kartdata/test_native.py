from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from kartdata import synth
from kartdata.errors import SourceError
from kartdata.schema import CONTROLS_FILE, SESSION_FILE, Pad, SessionMeta, frame_filename
from kartdata.sources import NativeSession, open_source
from kartdata.sources.base import recording_of
from kartdata.sources.native import SessionWriter, TornRowWarning


def test_writer_reader_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(5)]
    pads = [
        Pad(x=i / 5 - 0.5, y=-0.25, buttons=frozenset({"a"} if i % 2 else {"b", "z"}))
        for i in range(5)
    ]
    meta = SessionMeta(game="mk64", track="luigi", player="p1", width=32, height=24, fps=10)
    with SessionWriter(tmp_path / "s", meta) as w:
        for i, (im, pad) in enumerate(zip(images, pads, strict=True)):
            w.write(im, pad, t_ns=1000 + i, tags=("recovery",) if i >= 3 else ())
    s = open_source(tmp_path / "s")
    assert isinstance(s, NativeSession)
    assert s.meta.track == "luigi" and s.meta.width == 32
    got = list(s.frames())
    assert [f.index for f in got] == list(range(5))
    assert [f.t_ns for f in got] == [1000 + i for i in range(5)]
    assert [f.pad for f in got] == pads
    assert [f.tags for f in got] == [(), (), (), ("recovery",), ("recovery",)]
    for f, im in zip(got, images, strict=True):
        np.testing.assert_array_equal(f.image(), im)


def test_key_is_content_fingerprint(tmp_path: Path, native_session: Path) -> None:
    import shutil

    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(native_session, copy)
    assert NativeSession(native_session).key == NativeSession(copy).key
    meta = json.loads((copy / SESSION_FILE).read_text())
    meta["track"] = "other"
    (copy / SESSION_FILE).write_text(json.dumps(meta))
    assert NativeSession(native_session).key != NativeSession(copy).key


def test_key_changes_with_any_frame_byte_even_at_the_same_size(native_session: Path) -> None:
    frame = native_session / frame_filename(17)
    synth.retouch_png(frame, store=True)
    before, size = NativeSession(native_session).key, frame.stat().st_size
    synth.retouch_png(frame)
    assert frame.stat().st_size == size
    after = NativeSession(native_session).key
    assert after != before
    # the same recording (tables untouched), another version of its frames
    assert recording_of(after) == recording_of(before) != after
    assert NativeSession(native_session, key=before).key == before  # a key handed in is kept
    frame.unlink()  # a missing frame still has a key (validate reports the frame)
    assert NativeSession(native_session).key not in (before, after)


def test_key_names_no_unfinished_image(native_session: Path) -> None:
    before = NativeSession(native_session).key
    (native_session / "frames" / "00000040.png.part").write_bytes(b"half an image")
    assert NativeSession(native_session).key == before


def test_bad_row_names_file_and_line(native_session: Path) -> None:
    table = native_session / CONTROLS_FILE
    lines = table.read_text().splitlines(keepends=True)
    fields = lines[4].split(",")
    fields[2] = "nan"
    lines[4] = ",".join(fields)
    table.write_text("".join(lines))
    with pytest.raises(SourceError, match=rf"{CONTROLS_FILE}:5: axis x="):
        list(NativeSession(native_session).frames())


def test_corrupt_image_names_file_and_frame(native_session: Path) -> None:
    img = native_session / frame_filename(7)
    img.write_bytes(img.read_bytes()[:100])
    frames = list(NativeSession(native_session).frames())
    with pytest.raises(SourceError, match=r"00000007\.png: frame 7: corrupt or truncated"):
        frames[7].image()


_KILL_SCRIPT = """
import sys, numpy as np
from kartdata.schema import Pad, SessionMeta
from kartdata.sources.native import SessionWriter
w = SessionWriter(sys.argv[1], SessionMeta(width=64, height=48, fps=30))
im = np.zeros((48, 64, 3), np.uint8)
i = 0
while True:
    w.write(im, Pad(x=0.5), t_ns=i)
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


def test_writer_killed_leaves_readable_session(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out)], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornRowWarning)
        frames = list(NativeSession(out).frames())
    assert len(frames) >= 50
    assert [f.index for f in frames] == list(range(len(frames)))
    for f in frames:
        assert f.image().shape == (48, 64, 3)


def _kartdata(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KARTKIT_CACHE": str(tmp / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "kartdata.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_resharding_a_recording_whose_frame_was_repaired_is_refused(tmp_path: Path) -> None:
    import shutil

    from kartdata.manifest import Manifest

    rec = synth.make_native(tmp_path / "rec" / "a", 12, width=64, height=48)
    frame = rec / frame_filename(5)
    synth.retouch_png(frame, store=True)  # as recorded: stored uncompressed
    ds = tmp_path / "ds"
    first = _kartdata(tmp_path, "shard", str(rec), "--out", str(ds), "--workers", "0")
    assert first.returncode == 0, first.stderr
    manifest = (ds / "manifest.json").read_bytes()
    (old,) = Manifest.load(str(ds)).sessions
    # the same recording copied elsewhere is the same session
    copy = tmp_path / "copy" / "a"
    shutil.copytree(rec, copy)
    again = _kartdata(tmp_path, "shard", str(copy), "--out", str(ds))
    assert again.returncode == 0 and "added 0 session(s), skipped 1" in again.stdout

    size = frame.stat().st_size
    synth.retouch_png(frame)  # repaired: one pixel, the same byte size
    assert frame.stat().st_size == size
    new_key = NativeSession(rec).key
    assert new_key != old.key
    other = synth.make_native(tmp_path / "rec" / "b", 8, width=64, height=48, seed=4)
    refused = _kartdata(tmp_path, "shard", str(rec), str(other), "--out", str(ds))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    line = refused.stderr
    assert line.count("\n") == 1 and line.startswith(f"error: {rec}: this recording changed")
    assert f"session {old.key} from {old.source}" in line and f"now make {new_key}" in line
    assert "nothing was added" in line and "into a new dataset" in line
    # nothing was added: not the changed recording, not the new one given with it
    assert (ds / "manifest.json").read_bytes() == manifest
    verified = _kartdata(tmp_path, "verify", str(ds))
    assert verified.returncode == 0 and verified.stdout.startswith("ok: ")
    # the new version goes into a new dataset, as the message says
    fresh = _kartdata(tmp_path, "shard", str(rec), "--out", str(tmp_path / "ds2"))
    assert fresh.returncode == 0 and "12 frames" in fresh.stdout


def test_sessions_sharded_before_content_keys_are_still_recognised(tmp_path: Path) -> None:
    from kartdata.manifest import Manifest
    from kartdata.shard import ShardConfig, ShardReport, shard
    from kartdata.shard.pipeline import new_sessions
    from kartdata.sources.base import legacy_keys

    rec = synth.make_native(tmp_path / "a", 6, width=64, height=48)
    shard([rec], tmp_path / "ds", ShardConfig(workers=0, validate=False))
    m = Manifest.load(str(tmp_path / "ds"))
    key = m.sessions[0].key
    table_key = legacy_keys(key)[0]  # what the key was: session.json + controls.csv
    assert table_key == "native-" + key.split("-")[1]
    # a dataset made before keys covered the frames
    m.sessions[0] = dataclasses.replace(m.sessions[0], key=table_key)
    report = ShardReport(dataset="ds", generation=m.generation)
    assert new_sessions([NativeSession(rec)], m, report) == []
    assert report.sessions_skipped == [str(rec)]
    other = synth.make_native(tmp_path / "b", 6, width=64, height=48, seed=9)
    (task,) = new_sessions([NativeSession(other)], m, report)
    assert task.key == NativeSession(other).key
