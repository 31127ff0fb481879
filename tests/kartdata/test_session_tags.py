"""Frames without a label stay out of shards; a load can select sessions by tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kartdata
from kartdata.errors import DatasetError
from kartdata.manifest import Manifest
from kartdata.schema import UNLABELLED_TAG, Pad, SessionMeta
from kartdata.shard import ShardConfig, shard
from kartdata.sources.native import SessionWriter
from kartdata.split import SplitConfig

UNLABELLED = 5
FRAMES = 20


def _session(path: Path, tags: tuple[str, ...], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    meta = SessionMeta(
        game="synthetic",
        track=f"track-{seed}",
        player="test",
        width=64,
        height=48,
        fps=15.0,
        created=f"2026-01-0{seed + 1}T00:00:00+00:00",
        tags=tags,
    )
    with SessionWriter(path, meta) as writer:
        for i in range(FRAMES):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            if i < UNLABELLED:
                writer.write(
                    image, Pad(), t_ns=i * 66_666_667, tags=("no-game-time", UNLABELLED_TAG)
                )
            else:
                writer.write(
                    image,
                    Pad(x=0.5 if i % 2 else -0.5, buttons=frozenset({"a"})),
                    t_ns=i * 66_666_667,
                )
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tags")
    _session(root / "rec" / "demo", ("stk-replay", "expert"), seed=0)
    _session(root / "rec" / "own", (), seed=1)
    out = root / "ds"
    shard([root / "rec"], out, ShardConfig(workers=1))
    return out


def test_unlabelled_frames_are_counted_and_never_sharded(dataset: Path) -> None:
    manifest = Manifest.load(str(dataset))
    assert len(manifest.sessions) == 2
    for s in manifest.sessions:
        assert s.frames_total == FRAMES
        assert s.frames_written == FRAMES - UNLABELLED
        assert s.excluded == {UNLABELLED_TAG: UNLABELLED}
    df = kartdata.frames(str(dataset))
    assert len(df) == 2 * (FRAMES - UNLABELLED)
    assert int(df["frame"].min()) == UNLABELLED


def test_a_load_selects_sessions_by_their_tags(dataset: Path) -> None:
    manifest = Manifest.load(str(dataset))
    demo = next(s.key for s in manifest.sessions if "stk-replay" in s.tags)
    ds = kartdata.load(
        str(dataset),
        split="train",
        batch_size=4,
        splits=SplitConfig(val_fraction=0.0, session_tags=("stk-replay",)),
        augment=False,
        shuffle=False,
        with_meta=True,
    )
    seen: set[str] = set()
    frames = 0
    for _, _, meta in ds:
        seen |= {s.decode() for s in meta["session"].numpy()}
        frames += len(meta["session"])
    assert seen == {demo}
    assert frames == FRAMES - UNLABELLED


def test_a_tag_no_session_carries_is_a_one_line_error(dataset: Path) -> None:
    with pytest.raises(DatasetError) as e:
        kartdata.load(str(dataset), splits=SplitConfig(session_tags=("nobody-has-this",)))
    assert "no session carries the tags nobody-has-this (of 2 sessions)" in str(e.value)
    assert "\n" not in str(e.value)
