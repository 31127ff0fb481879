"""The interface between the sharder and its engines.

An engine is a module with a ``run`` function (:data:`RunEngine`): it shards
every :class:`SessionTask` of a :class:`ShardJob` on up to ``workers`` workers,
each worker holding one :class:`~kartdata.shard.files.StratumWriters` across
its sessions, calls ``on_frames(n)`` as frames are written, and returns an
:class:`EngineResult`: every session's result and every finished shard. It
never writes the manifest: :func:`kartdata.shard.pipeline.shard` does, once,
after all shards are complete. On any failure it aborts its workers' open
shards and raises a :class:`~kartdata.errors.KartError` (one line).

Engines are looked up by name (:func:`engine`); their modules are imported
only when chosen, so the local engine never imports Ray.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from kartdata import errors
from kartdata.errors import KartError, SourceError
from kartdata.manifest import Encoding, ShardInfo
from kartdata.schema import ClassThresholds
from kartdata.shard.config import Engine
from kartdata.shard.files import StratumWriters
from kartdata.shard.images import StoredSpool
from kartdata.shard.session import ShardedSession, frame_verdicts, shard_session
from kartdata.sources import open_source

#: Where each engine's ``run`` lives.
ENGINE_MODULES: dict[str, str] = {"local": "kartdata.shard.local", "ray": "kartdata.shard.ray"}

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class ShardJob:
    """What every worker of a run needs; picklable (for spawn and for Ray)."""

    dataset: str
    generation: int
    encoding: Encoding
    classes: ClassThresholds
    target_bytes: int
    keep_flagged: bool
    validate: bool
    trust_pickle: bool
    #: Ray cluster to join (the ray engine only; None: local or current Ray).
    address: str | None = field(default=None, compare=False)


class SessionTask(NamedTuple):
    """One recording to shard and the key it is recorded under."""

    path: str
    key: str


@dataclass
class EngineResult:
    sessions: list[ShardedSession]
    shards: list[ShardInfo]


class RunEngine(Protocol):
    def __call__(
        self, job: ShardJob, tasks: Sequence[SessionTask], workers: int, on_frames: ProgressFn
    ) -> EngineResult: ...


def engine(name: Engine) -> RunEngine:
    """The ``run`` function of the engine called ``name``."""
    module = importlib.import_module(ENGINE_MODULES[name])
    run: RunEngine = module.run
    return run


def open_writers(job: ShardJob, worker: int) -> StratumWriters:
    """Worker ``worker``'s open shards for this run."""
    return StratumWriters(
        job.dataset,
        generation=job.generation,
        worker=worker,
        compression=job.encoding.compression,
        target_bytes=job.target_bytes,
    )


def shard_task(
    job: ShardJob,
    task: SessionTask,
    writers: StratumWriters,
    on_frames: ProgressFn,
    *,
    in_worker: bool,
) -> ShardedSession:
    """Open, validate (if asked) and shard one recording into ``writers``."""
    # the key the driver matched: computing it again would read every frame again
    source = open_source(task.path, trust_pickle=job.trust_pickle, key=task.key)
    with StoredSpool(job.encoding) as spool:
        # validating here decodes every frame: its pixels become the stored
        # images then and there, and sharding takes them instead of decoding again
        verdicts = (
            frame_verdicts(source, in_worker=in_worker, on_image=spool.add) if job.validate else {}
        )
        return shard_session(
            source,
            writers,
            encoding=job.encoding,
            classes=job.classes,
            verdicts=verdicts,
            keep_flagged=job.keep_flagged,
            key=task.key,
            on_frames=on_frames,
            spool=spool,
        )


def error_from(kind: str, message: str) -> KartError:
    """A :class:`KartError` a worker reported by class name and message, rebuilt
    in the driver (exceptions do not cross processes in one line)."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, KartError):
        return cls(message)
    return SourceError(message)
