"""What a ``kartdata shard`` run is asked to do, and what it reports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.manifest import MANIFEST_FILE, Encoding, Manifest
from kartdata.schema import ClassThresholds
from kartdata.tfrecord import check_compression

#: Where the per-session work runs: worker processes on this machine, or Ray
#: actors (:mod:`kartdata.shard.ray`). The work is the same, only the scheduling differs.
Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)
#: Rotate a shard once this many record bytes (before compression) are in it.
DEFAULT_SHARD_BYTES = 128 << 20


@dataclass(frozen=True)
class ShardConfig:
    """How to shard. ``encoding`` / ``classes`` left as ``None`` take the
    existing dataset's (or the defaults for a new one); given explicitly, they
    must match an existing dataset's."""

    encoding: Encoding | None = None
    #: Rotate a shard once this many record bytes (before compression) are in it.
    target_shard_bytes: int = DEFAULT_SHARD_BYTES
    classes: ClassThresholds | None = None
    #: Worker processes; 0 runs everything in this process. With Ray,
    #: ``workers`` <= 0 means one actor per cluster CPU.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Keep frames the validator flagged (their reason goes in the index).
    keep_flagged: bool = False
    #: Run the validator (kartdata.validate) and exclude what it flags.
    validate: bool = True
    trust_pickle: bool = False
    progress: bool = False
    engine: Engine = "local"
    #: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
    #: ``None`` joins an already initialised Ray or starts a local one.
    address: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DatasetError(f"engine {self.engine!r} is not 'local' or 'ray'")
        if self.address is not None and self.engine != "ray":
            raise DatasetError("a Ray address is only for the ray engine")
        if self.target_shard_bytes <= 0:
            raise DatasetError(f"target shard size {self.target_shard_bytes} is not positive")


@dataclass
class ShardReport:
    dataset: str
    generation: int
    sessions_added: list[str] = field(default_factory=list)
    sessions_skipped: list[str] = field(default_factory=list)
    frames_written: int = 0
    frames_excluded: dict[str, int] = field(default_factory=dict)
    shards_written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: added {len(self.sessions_added)} session(s), "
            f"skipped {len(self.sessions_skipped)} already present"
        ]
        if self.sessions_added:
            rate = self.frames_written / self.seconds if self.seconds else 0.0
            lines.append(
                f"generation {self.generation}: {self.frames_written} frames in "
                f"{self.shards_written} shard(s), {self.bytes_written / 1e6:.1f} MB, "
                f"{self.seconds:.1f} s ({rate:.0f} frames/s)"
            )
        if self.frames_excluded:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.frames_excluded.items()))
            lines.append(f"excluded by validation: {reasons}")
        return "\n".join(lines)


def check_encoding(encoding: Encoding) -> Encoding:
    """``encoding`` if the sharder can write it, else a one-line DatasetError."""
    if encoding.image != "jpeg":
        raise DatasetError(f"image encoding {encoding.image!r} is not supported (only jpeg)")
    if not 1 <= encoding.quality <= 100:
        raise DatasetError(f"JPEG quality {encoding.quality} is not in 1..100")
    if encoding.max_width < 1 or encoding.max_height < 1:
        raise DatasetError(f"storage box {encoding.max_width}x{encoding.max_height} is empty")
    try:
        check_compression(encoding.compression)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    return encoding


def encoding_with(dataset: str, **overrides: Any) -> Encoding | None:
    """The encoding a run would use with only ``overrides`` (non-None) given:
    the existing dataset's (or the default) with those fields replaced; ``None``
    when nothing is given (for the CLI, whose options are all optional)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return None
    base = (
        Manifest.load(dataset).encoding
        if fs.exists(fs.join(dataset, MANIFEST_FILE))
        else Encoding()
    )
    return replace(base, **given)
