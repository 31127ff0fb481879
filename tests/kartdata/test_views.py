"""Pandas views and plots of a dataset, from the index sidecars."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from loader_dataset import make_dataset

import kartdata
from kartdata import synth
from kartdata.errors import DatasetError
from kartdata.index import read_index
from kartdata.manifest import Manifest
from kartdata.plots import plot_class_mix, plot_frames, plot_steering
from kartdata.schema import PAD_FIELDS, Pad, SessionMeta
from kartdata.shard import ShardConfig, shard
from kartdata.sources.native import SessionWriter

matplotlib.use("Agg")

BLACK = (5, 6, 7)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("frames"), sessions=3, frames=40)


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset sharded with validation, one session with black frames."""
    root = tmp_path_factory.mktemp("validated")
    mp = pytest.MonkeyPatch()
    mp.setenv("KARTKIT_CACHE", str(root / "cache"))
    try:
        synth.make_native(root / "rec" / "clean", 30, seed=1, width=160, height=120)
        meta = SessionMeta(game="synthetic", track="black", width=160, height=120, fps=15.0)
        with SessionWriter(root / "rec" / "dark", meta) as w:
            for i in range(30):
                img = synth.render(0.5, i, 160, 120)
                if i in BLACK:
                    img = np.zeros_like(img)
                w.write(img, Pad(x=0.5), t_ns=1_000_000_000 + i * 66_666_666)
        shard([root / "rec"], root / "ds", ShardConfig(workers=0, validate=True))
    finally:
        mp.undo()
    return root / "ds"


def test_frames_is_one_row_per_frame_from_the_index_alone(dataset: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(str(dataset))
    df = kartdata.frames(str(dataset))
    assert len(df) == manifest.frames
    for col in ("session", "track", "frame", "time_s", *PAD_FIELDS, "stratum", "tags", "verdict"):
        assert col in df.columns
    assert set(df["session"]) == manifest.session_keys()
    assert df.groupby("session").size().to_dict() == {
        s.key: s.frames_written for s in manifest.sessions
    }
    assert (df.groupby("session")["time_s"].min() == 0).all()
    assert df["recovery"].any() and not df["recovery"].all()
    # No image byte is needed: the views work with every shard file gone.
    for s in manifest.shards:
        (dataset / s.path).rename(tmp_path / Path(s.path).name)
    try:
        assert len(kartdata.frames(str(dataset))) == manifest.frames
        sessions = kartdata.sessions(str(dataset))
    finally:
        for s in manifest.shards:
            (tmp_path / Path(s.path).name).rename(dataset / s.path)
    assert len(sessions) == len(manifest.sessions)
    row = sessions.set_index("session").loc[manifest.sessions[0].key]
    assert row["frames_written"] == manifest.sessions[0].frames_written
    shares = row[["left_share", "straight_share", "right_share"]].sum()
    assert shares == pytest.approx(1.0)


def test_frame_image_reads_the_record(dataset: Path) -> None:
    df = kartdata.frames(str(dataset))
    row = df.iloc[len(df) // 2]
    image = kartdata.frame_image(str(dataset), row["session"], int(row["frame"]))
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    # The stored frame is the synthetic render of that pad (JPEG-close).
    manifest = Manifest.load(str(dataset))
    seed = next(s.extra for s in manifest.sessions if s.key == row["session"])
    want = synth.render(float(row["x"]), int(row["frame"]), 160, 120, seed.get("seed", 0))
    assert np.abs(image.astype(int) - want.astype(int)).mean() < 8
    with pytest.raises(DatasetError, match="no frame 99999"):
        kartdata.frame_image(str(dataset), row["session"], 99999)


def test_excluded_frames_and_verdicts(validated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = validated
    monkeypatch.setenv("KARTKIT_CACHE", str(ds.parent / "cache"))
    manifest = Manifest.load(str(ds))
    dark = next(s for s in manifest.sessions if s.track == "black")
    assert sum(dark.excluded.values()) == len(BLACK)
    df = kartdata.frames(str(ds))
    left_out = df[df["excluded"]]
    assert sorted(left_out["frame"]) == list(BLACK)
    assert (left_out["verdict"] != "").all() and (left_out["session"] == dark.key).all()
    assert len(df[~df["excluded"]]) == manifest.frames
    sessions = kartdata.sessions(str(ds)).set_index("session")
    assert sessions.loc[dark.key, "excluded"] == len(BLACK)
    # A left-out frame's image still comes from the recording.
    image = kartdata.frame_image(str(ds), dark.key, BLACK[0])
    assert image.max() == 0


def test_plots(dataset: Path) -> None:
    ax = plot_class_mix(str(dataset), balance="uniform", split="all")
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights[3:] == [round(1 / 3, 6)] * 3  # balanced bars
    df = kartdata.frames(str(dataset))
    assert sum(heights[:3]) == pytest.approx(1.0)
    ax = plot_steering(df, by="track")
    assert len(ax.get_legend().get_texts()) == df["track"].nunique()
    fig = plot_frames(str(dataset), df.iloc[:5])
    assert len([a for a in fig.axes if a.images]) == 5


def test_damaged_index_is_a_one_line_error(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    shard_info = Manifest.load(str(copy)).shards[0]
    (copy / shard_info.index).write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=Path(shard_info.index).name):
        read_index(str(copy / shard_info.index))
    with pytest.raises(DatasetError, match=Path(shard_info.index).name):
        kartdata.load(str(copy), split="all")


# -- the Parquet index: columns and row groups asked for, old CSV datasets ------


def test_columns_and_filters_are_read_from_the_index(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    full = kartdata.frames(str(dataset))
    reads: list[tuple[list[str], int]] = []
    read_file, read_table = pq.ParquetFile.read, pq.read_table

    def spy_file(self: pq.ParquetFile, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        table = read_file(self, *args, **kw)  # type: ignore[arg-type]
        reads.append((table.column_names, len(table)))
        return table

    def spy_table(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        table = read_table(*args, **kw)  # type: ignore[arg-type]
        reads.append((table.column_names, len(table)))
        return table

    # what pyarrow itself hands back from the files
    monkeypatch.setattr(pq.ParquetFile, "read", spy_file)
    monkeypatch.setattr(pq, "read_table", spy_table)
    two = kartdata.frames(str(dataset), columns=["session", "x"])
    assert list(two.columns) == ["session", "x"] and len(two) == len(full)
    # only the columns asked for, plus the sort keys: no pad buttons, tags, ...
    assert reads and all(sorted(cols) == ["frame", "session", "x"] for cols, _ in reads)
    np.testing.assert_array_equal(two["x"].to_numpy(), full["x"].to_numpy())
    assert str(two["session"].dtype) == "category"

    reads.clear()
    track = full["track"].iloc[0]
    left = kartdata.frames(str(dataset), filters=[("track", "==", track), ("x", "<", 0.0)])
    want = full[(full["track"] == track) & (full["x"] < 0.0)]
    assert 0 < len(left) < len(full)
    assert left[["session", "frame"]].values.tolist() == want[["session", "frame"]].values.tolist()
    # the filter ran in the read: only matching rows came out of the files
    assert sum(n for _, n in reads) == len(left)
    with pytest.raises(DatasetError, match="unknown frames"):
        kartdata.frames(str(dataset), columns=["nope"])


def _as_version_1(src: Path, dst: Path) -> None:
    """A copy of ``src`` as kartkit wrote datasets before the Parquet index:
    gzip CSV sidecars with a header row, manifest version 1."""
    import csv
    import gzip
    import json
    import shutil

    import pyarrow.parquet as pq

    from kartdata.index import INDEX_COLUMNS

    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["version"] == 2
    for s in manifest["shards"]:
        parquet = dst / s["index"]
        table = pq.read_table(parquet)
        s["index"] = s["index"].replace(".index.parquet", ".index.csv.gz")
        with gzip.open(dst / s["index"], "wt", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(INDEX_COLUMNS)
            for row in table.to_pylist():
                w.writerow([row[c] for c in INDEX_COLUMNS])
        parquet.unlink()
    manifest["version"] = 1
    (dst / "manifest.json").write_text(json.dumps(manifest))


def test_datasets_with_csv_indexes_still_read(dataset: Path, tmp_path: Path) -> None:
    from kartdata.loader import prepare
    from kartdata.manifest import verify

    old = tmp_path / "old"
    _as_version_1(dataset, old)
    assert not list((old / "shards").glob("*.parquet"))
    new_df, old_df = kartdata.frames(str(dataset)), kartdata.frames(str(old))
    assert list(old_df.columns) == list(new_df.columns)
    for c in new_df.columns:
        np.testing.assert_array_equal(old_df[c].astype(str), new_df[c].astype(str))
    assert verify(str(old)).ok and verify(str(old), rehash=False).ok
    assert prepare(str(old), split="all").frames == len(new_df)
    # a sidecar cut short is caught in the old format too
    first = Manifest.load(str(old)).shards[0]
    import gzip

    lines = gzip.decompress((old / first.index).read_bytes()).splitlines(keepends=True)
    (old / first.index).write_bytes(gzip.compress(b"".join(lines[:-1])))
    assert any(p.startswith(first.index) for p in verify(str(old), rehash=False).problems)
