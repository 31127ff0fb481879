"""Small real datasets for the kartmodel tests: synthetic native sessions
(``kartdata.synth``) sharded by the real sharder, so the tests read exactly
what users' datasets hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kartdata import synth
from kartdata.manifest import Manifest
from kartdata.shard import ShardConfig, shard


def make_dataset(
    root: Path, sessions: int = 4, frames: int = 120, width: int = 160, height: int = 120
) -> Path:
    """``sessions`` synthetic drives (the road bends with the steering; odd
    ones with a recovery segment) recorded as ``root/rec/s0``, ``s1``… and
    sharded into ``root/ds``. Splits and evaluation name them ``s0``… by their
    recording's name; the dataset's keys are the sharder's fingerprints."""
    recordings = root / "rec"
    for s in range(sessions):
        synth.make_native(
            recordings / f"s{s}",
            frames,
            seed=s,
            width=width,
            height=height,
            recovery_share=0.2 if s % 2 else 0.0,
        )
    out = root / "ds"
    # Validation off: every frame is written, so example counts are known.
    shard([recordings], out, ShardConfig(workers=0, validate=False))
    return out


def key_of(dataset: Path, name: str) -> str:
    """The session key of the recording called ``name`` in ``dataset``."""
    (key,) = [s.key for s in Manifest.load(str(dataset)).sessions if Path(s.source).name == name]
    return key


def frame(steer: float, width: int = 160, height: int = 120, t: int = 0) -> np.ndarray:
    return synth.render(steer, t, width, height, 0)
