"""Small real datasets for the loader, frames and notebook tests: synthetic
drives sharded by the real sharder."""

from __future__ import annotations

from pathlib import Path

from kartdata import synth
from kartdata.manifest import Encoding
from kartdata.shard import ShardConfig, shard


def make_dataset(
    root: Path,
    sessions: int = 6,
    frames: int = 80,
    *,
    width: int = 160,
    height: int = 120,
    compression: str = "GZIP",
    validate: bool = False,
) -> Path:
    """``sessions`` drives on two tracks (odd ones with a recovery segment),
    sharded into small shards (several per stratum) under ``root/ds``."""
    recordings = root / "rec"
    for i in range(sessions):
        synth.make_native(
            recordings / f"s{i}",
            frames,
            seed=i,
            width=width,
            height=height,
            track=f"track{i % 2}",
            recovery_share=0.3 if i % 2 else 0.0,
        )
    out = root / "ds"
    shard(
        [recordings],
        out,
        ShardConfig(
            encoding=Encoding(compression=compression),
            target_shard_bytes=150_000,
            workers=0,
            validate=validate,
        ),
    )
    return out
