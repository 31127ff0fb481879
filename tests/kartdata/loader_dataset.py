"""Small real datasets for the loader, frames and notebook tests: synthetic
drives sharded by the real sharder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kartdata import synth
from kartdata.manifest import Encoding
from kartdata.schema import Pad, SessionMeta
from kartdata.shard import ShardConfig, shard
from kartdata.sources.native import SessionWriter


def make_dataset(
    root: Path,
    sessions: int = 6,
    frames: int = 80,
    *,
    width: int = 160,
    height: int = 120,
    compression: str = "GZIP",
    validate: bool = False,
    black_frames: tuple[int, ...] = (),
) -> Path:
    """``sessions`` drives on two tracks (odd ones with a recovery segment),
    sharded into small shards (several per stratum) under ``root/ds``. With
    ``black_frames``, one more session whose frames at those indices are
    black, for the validator to flag (pass ``validate=True``)."""
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
    if black_frames:
        meta = SessionMeta(game="synthetic", track="dark", width=width, height=height, fps=15.0)
        with SessionWriter(recordings / "dark", meta) as w:
            for i in range(max(black_frames) + 10):
                image = synth.render(0.5, i, width, height)
                if i in black_frames:
                    image = np.zeros_like(image)
                w.write(image, Pad(x=0.5), t_ns=1_000_000_000 + i * 66_666_666)
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
