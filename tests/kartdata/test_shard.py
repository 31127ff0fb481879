from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from kartdata import synth
from kartdata.errors import DatasetError
from kartdata.index import INDEX_COLUMNS
from kartdata.manifest import Encoding, Manifest, orphans, verify
from kartdata.schema import (
    CONTEXT_LEN,
    PAD_SIZE,
    ClassThresholds,
    FrameExample,
    Pad,
    decode_example,
    is_recovery,
    stratum_name,
)
from kartdata.shard import ShardConfig, dataset_lock, shard
from kartdata.shard.context import with_context
from kartdata.shard.images import resize_to_fit
from kartdata.sources import open_source
from kartdata.sources.base import Frame
from kartdata.tfrecord import read_records

SMALL = Encoding(max_width=80, max_height=60)


@pytest.fixture(autouse=True)
def _verdict_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "cache"))


def _config(**kw: object) -> ShardConfig:
    base: dict[str, object] = {
        "workers": 0,
        "validate": False,
        "trust_pickle": True,
        "encoding": SMALL,
    }
    return ShardConfig(**{**base, **kw})  # type: ignore[arg-type]


def _plain(t: pa.DataType) -> pa.DataType:
    return pa.string() if pa.types.is_dictionary(t) else t


def _records(ds: Path) -> list[FrameExample]:
    m = Manifest.load(str(ds))
    out = []
    for s in m.shards:
        recs = [decode_example(r) for r in read_records(str(ds / s.path), m.encoding.compression)]
        assert {r.stratum for r in recs} == {s.stratum}
        assert s.index.endswith(".index.parquet")
        table = pq.read_table(ds / s.index)
        assert tuple(table.column_names) == INDEX_COLUMNS
        for name in ("session", "track", "stratum", "tags", "verdict"):
            assert pa.types.is_dictionary(table.schema.field(name).type), name
        rows = table.cast(pa.schema([(f.name, _plain(f.type)) for f in table.schema])).to_pylist()
        assert len(rows) == len(recs) == s.frames
        for i, (row, r) in enumerate(zip(rows, recs, strict=True)):
            assert (row["session"], int(row["frame"]), int(row["record"])) == (
                r.session,
                r.frame,
                i,
            )
            assert float(row["x"]) == pytest.approx(r.pad[0], abs=1e-6)
        out.extend(recs)
    return out


def _expected_context(frames: list[Frame], i: int) -> list[float]:
    ctx: list[float] = []
    for k in range(i - 5, i + 6):
        ctx.extend(frames[min(max(k, 0), len(frames) - 1)].pad.to_vector())
    return ctx


@pytest.fixture
def three_layouts(tmp_path: Path) -> list[Path]:
    rec = tmp_path / "rec"
    return [
        synth.make_native(rec / "native", 24, width=160, height=120, recovery_share=0.3, seed=1),
        synth.make_tensorkart(rec / "tk", 20, width=128, height=96, seed=2),
        synth.make_ctr(rec / "ctr", 16, mode="A", seed=3),
    ]


def test_round_trip_pixels_and_controls_all_layouts(tmp_path: Path, three_layouts: list[Path]):
    ds = tmp_path / "ds"
    report = shard([tmp_path / "rec"], ds, _config())
    assert report.frames_written == 60 and len(report.sessions_added) == 3
    records = {(r.session, r.frame): r for r in _records(ds)}
    assert len(records) == 60
    classes = ClassThresholds()
    for path in three_layouts:
        src = open_source(path, trust_pickle=True)
        frames = list(src.frames())
        for i, f in enumerate(frames):
            r = records.pop((src.key, f.index))
            assert r.t_ns == f.t_ns and r.tags == f.tags and r.track == src.meta.track
            np.testing.assert_allclose(r.pad, f.pad.to_vector(), atol=1e-6)
            np.testing.assert_allclose(r.context, _expected_context(frames, i), atol=1e-6)
            assert r.stratum == stratum_name(classes.classify(f.pad.x), is_recovery(f.tags))
            want = resize_to_fit(f.image(), SMALL)
            got = np.asarray(Image.open(io.BytesIO(r.image)).convert("RGB"))
            assert got.shape == want.shape == (r.height, r.width, 3)
            assert got.shape[1] <= 80 and got.shape[0] <= 60
            # JPEG q90 on small, stripy synthetic frames: PSNR well above 28 dB
            mse = np.mean((got.astype(float) - want.astype(float)) ** 2)
            assert 10 * np.log10(255**2 / mse) > 28, (path, i)
    assert not records
    m = Manifest.load(str(ds))
    assert sum(m.histogram["x"]["counts"]) == 60 and m.histogram["buttons"]["a"] > 0
    assert {s.layout for s in m.sessions} == {"native", "tensorkart", "ctr"}
    assert verify(str(ds)).ok


def test_tensorflow_reads_every_compression(tmp_path: Path) -> None:
    import tensorflow as tf

    from kartdata.schema import feature_spec

    src = synth.make_native(tmp_path / "s", 12, width=64, height=48)
    for compression in ("GZIP", "ZLIB", ""):
        ds = tmp_path / f"ds-{compression or 'none'}"
        shard([src], ds, _config(encoding=Encoding(compression=compression)))
        m = Manifest.load(str(ds))
        assert m.encoding.compression == compression
        files = [str(ds / s.path) for s in m.shards]
        data = tf.data.TFRecordDataset(files, compression_type=compression)
        parsed = [tf.io.parse_single_example(x, feature_spec()) for x in data]
        assert sorted(int(p["frame"]) for p in parsed) == list(range(12))
        for p in parsed:
            img = tf.io.decode_jpeg(p["image"])
            assert tuple(img.shape) == (48, 64, 3)
            assert p["context"].shape == (CONTEXT_LEN * PAD_SIZE,)


def test_append_and_idempotence(tmp_path: Path) -> None:
    a = synth.make_native(tmp_path / "rec" / "a", 10, width=64, height=48, seed=1)
    b = synth.make_tensorkart(tmp_path / "rec" / "b", 12, width=64, height=48, seed=2)
    ds = tmp_path / "ds"
    first = shard([a], ds, _config())
    assert (first.generation, first.frames_written) == (1, 10)
    manifest_bytes = (ds / "manifest.json").read_bytes()
    again = shard([a], ds, _config())
    assert again.sessions_added == [] and again.sessions_skipped == [str(a)]
    assert (ds / "manifest.json").read_bytes() == manifest_bytes
    more = shard([tmp_path / "rec"], ds, _config(encoding=None))
    assert more.generation == 2 and more.sessions_added == [str(b)]
    assert more.sessions_skipped == [str(a)]
    m = Manifest.load(str(ds))
    assert [s.generation for s in m.sessions] == [1, 2]
    assert {s.generation for s in m.shards} == {1, 2}
    assert m.frames == 22 and len(_records(ds)) == 22
    assert all(s.path.split("-g")[1].startswith(f"{s.generation:05d}") for s in m.shards)
    assert verify(str(ds)).ok and orphans(str(ds), m) == []


def test_copied_recordings_are_the_same_sessions(tmp_path: Path, three_layouts: list[Path]):
    """A session is known by its content, not its path: all three layouts,
    copied elsewhere, are recognised and skipped."""
    import shutil

    ds = tmp_path / "ds"
    first = shard([tmp_path / "rec"], ds, _config())
    assert len(first.sessions_added) == 3
    manifest_bytes = (ds / "manifest.json").read_bytes()
    copies = tmp_path / "elsewhere" / "copied"
    shutil.copytree(tmp_path / "rec", copies)
    again = shard([copies], ds, _config())
    assert again.sessions_added == []
    assert len(again.sessions_skipped) == 3
    assert all(p.startswith(str(copies)) for p in again.sessions_skipped)
    assert (ds / "manifest.json").read_bytes() == manifest_bytes
    assert verify(str(ds)).ok


def test_existing_settings_win_and_conflicts_are_errors(tmp_path: Path) -> None:
    a = synth.make_native(tmp_path / "a", 4, width=64, height=48)
    b = synth.make_native(tmp_path / "b", 4, width=64, height=48, seed=5)
    ds = tmp_path / "ds"
    shard([a], ds, _config(encoding=Encoding(quality=70, compression="")))
    with pytest.raises(DatasetError, match="encoding"):
        shard([b], ds, _config(encoding=Encoding(quality=80, compression="")))
    with pytest.raises(DatasetError, match="class thresholds"):
        shard([b], ds, _config(encoding=None, classes=ClassThresholds(-0.3, 0.3)))
    shard([b], ds, _config(encoding=None))
    assert Manifest.load(str(ds)).encoding.quality == 70


def test_worker_processes_match_inline(tmp_path: Path, three_layouts: list[Path]) -> None:
    inline = tmp_path / "inline"
    procs = tmp_path / "procs"
    shard([tmp_path / "rec"], inline, _config())
    # a real `kartdata shard` with two workers, each held on its first record
    # until both have one (shard_hooks.py), so that both get sessions
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    args = [str(tmp_path / "rec"), "--out", str(procs), "--workers", "2", "--no-validate"]
    args += ["--trust-pickle", "--max-width", "80", "--max-height", "60"]
    args += ["--shard-mb", str(20_000 / (1 << 20))]
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("shard_hooks.py")), "shard", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SHARD_BARRIER": f"2:{barrier}"},
    )
    assert run.returncode == 0, run.stderr
    assert "60 frames" in run.stdout
    m = Manifest.load(str(procs))
    # each worker names its own shards, and a session stays with one worker
    assert {s.path.split("-w")[1][:2] for s in m.shards} == {"00", "01"}
    worker_of: dict[str, set[str]] = {}
    for s in m.shards:
        for r in read_records(str(procs / s.path), m.encoding.compression):
            worker_of.setdefault(decode_example(r).session, set()).add(s.path.split("-w")[1][:2])
    assert len(worker_of) == 3 and all(len(w) == 1 for w in worker_of.values())
    assert max(s.frames for s in m.shards) < 60  # rotated at the small target
    key = lambda r: (r.session, r.frame)  # noqa: E731
    a, b = sorted(_records(inline), key=key), sorted(_records(procs), key=key)
    assert [(key(r), r.pad, r.context, r.image) for r in a] == [
        (key(r), r.pad, r.context, r.image) for r in b
    ]
    assert verify(str(procs)).ok


def test_validation_verdicts_exclude_and_count(tmp_path: Path) -> None:
    from kartdata.validate.verdicts import frame_verdicts

    src = synth.make_native(tmp_path / "s", 30, width=64, height=48)
    for i in (4, 5, 17):
        Image.new("RGB", (64, 48)).save(src / "frames" / f"{i:08d}.png")
    verdicts = frame_verdicts(open_source(src))
    assert verdicts.get(4) == "black" and verdicts.get(17) == "black"
    report = shard([src], tmp_path / "ds", _config(validate=True))
    assert report.frames_excluded == dict(Counter(verdicts.values()))
    frames = {r.frame for r in _records(tmp_path / "ds")}
    assert frames == set(range(30)) - set(verdicts)
    kept = shard([src], tmp_path / "kept", _config(validate=True, keep_flagged=True))
    assert kept.frames_written == 30
    for index in (tmp_path / "kept" / "shards").glob("*.index.parquet"):
        rows = pq.read_table(index, columns=["frame", "verdict"]).to_pylist()
        assert all(r["verdict"] == verdicts.get(r["frame"], "") for r in rows)


def test_verify_names_the_bad_shard(tmp_path: Path) -> None:
    src = synth.make_native(tmp_path / "s", 20, width=64, height=48)
    ds = tmp_path / "ds"
    shard([src], ds, _config(target_shard_bytes=2000))
    m = Manifest.load(str(ds))
    assert len(m.shards) > 2
    victim = ds / m.shards[0].path
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    report = verify(str(ds))
    assert not report.ok and all(m.shards[0].path in p for p in report.problems)
    index = ds / m.shards[1].index
    table = pq.read_table(index)
    pq.write_table(table.slice(0, len(table) - 1), index)
    assert any(p.startswith(m.shards[1].index) for p in verify(str(ds)).problems)


def test_second_writer_is_refused(tmp_path: Path) -> None:
    src = synth.make_native(tmp_path / "s", 3, width=32, height=24)
    ds = tmp_path / "ds"
    ds.mkdir()
    with dataset_lock(str(ds)), pytest.raises(DatasetError, match="another `kartdata shard`"):
        shard([src], ds, _config())


def _frame(i: int, t: int, x: float) -> Frame:
    return Frame(i, t, Pad(x=x), (), "", None, lambda: np.zeros((1, 1, 3), np.uint8))


def test_context_replicates_segment_edges() -> None:
    frames = [_frame(i, i * 10**8, i / 20) for i in range(8)]
    frames += [_frame(i + 8, 100 * 10**9 + i * 10**8, -i / 20) for i in range(4)]  # a gap
    got = list(with_context(frames, 2))
    assert [f.index for f, _ in got] == list(range(12))
    xs = [[ctx[k * PAD_SIZE] for k in range(5)] for _, ctx in got]
    assert xs[0] == [0, 0, 0, 0.05, 0.1]
    assert xs[7] == [0.25, 0.3, 0.35, 0.35, 0.35]
    assert xs[8] == [0, 0, 0, -0.05, -0.1]
    assert xs[11] == [-0.05, -0.1, -0.15, -0.15, -0.15]
    assert json.dumps(xs)  # plain floats
