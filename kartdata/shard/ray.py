"""The Ray engine: the same shards and manifest as the local engine, with the
sessions spread over Ray actors instead of local processes.

Each actor is one long-lived worker holding its
:class:`~kartdata.shard.files.StratumWriters` (as a local worker process
does), so shards fill up across sessions instead of one small shard per
session and stratum. The driver hands out sessions one at a time as actors
finish them (a slow session never holds up a queue behind it), then closes
every actor's writers and returns the finished shards; the caller writes the
manifest once, under the dataset lock, after all of them are complete. On any
failure every actor aborts its open shards and the caller deletes whatever the
run left, as locally.

On a cluster, every node must be able to import ``kartkit`` (install
``kartkit[ray]`` there, or pass a ``runtime_env`` to ``ray start``), read the
recordings at the paths the driver found them under, and write the dataset
path: a shared filesystem, or a ``gs://`` / ``hdfs://`` / ``s3://`` URL, which
every file access goes through ``tf.io.gfile`` for (kartdata.fs).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kartdata.errors import DatasetError, KartError, fault
from kartdata.malloc import keep_freed_memory
from kartdata.manifest import ShardInfo
from kartdata.shard.engine import (
    EngineResult,
    ProgressFn,
    SessionTask,
    ShardJob,
    error_from,
    open_writers,
    shard_task,
)
from kartdata.shard.session import ShardedSession

#: Sessions queued on each actor beyond the one it is working on, so that an
#: actor never waits on a round trip to the driver between two sessions.
PIPELINE_DEPTH = 1

_T = TypeVar("_T")
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


class _ShardWorker:
    """One Ray actor: a worker number, its open shards, sessions one by one."""

    def __init__(self, job: ShardJob, worker: int) -> None:
        keep_freed_memory()
        self.job = job
        self.writers = open_writers(job, worker)

    def session(self, path: str, key: str) -> ShardedSession | _Failure:
        return self._failing_as_value(
            lambda: shard_task(
                self.job, SessionTask(path, key), self.writers, lambda n: None, in_worker=True
            )
        )

    def close(self) -> list[ShardInfo] | _Failure:
        return self._failing_as_value(self.writers.close)

    def _failing_as_value(self, work: Callable[[], _T]) -> _T | _Failure:
        """``work()``, or its failure as a value: Ray would wrap the exception
        in its own multi-line error, and the CLI must print one line."""
        try:
            return work()
        except KartError as e:
            return _Failure(type(e).__name__, str(e))
        except (OSError, MemoryError) as e:  # a full disk, a read-only one, a refusal
            return _Failure("DatasetError", str(fault(e, self.job.dataset)))

    def abort(self) -> None:
        self.writers.abort()


class _Failure:
    def __init__(self, kind: str, message: str) -> None:
        self.kind, self.message = kind, message


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join ``address`` (or an already initialised Ray), else start a local Ray
    without the dashboard (cheap to start). True when this call started it."""
    try:
        import ray
    except ImportError:
        raise DatasetError("the ray engine needs Ray: pip install 'kartkit[ray]'") from None
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # Ray warns on every new local cluster that it turned token auth on
        # (its default, kept): a line the CLI must not print.
        quiet = logging.getLogger(_RAY_AUTH_LOGGER)
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        finally:
            quiet.setLevel(level)
    return True


def run(
    job: ShardJob, tasks: Sequence[SessionTask], workers: int, on_frames: ProgressFn
) -> EngineResult:
    """Shard ``tasks`` over Ray actors (``workers`` <= 0: one per cluster CPU)."""
    import ray

    started = connect(job.address)
    try:
        if workers <= 0:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = min(workers, len(tasks))
        actor_cls = ray.remote(num_cpus=1)(_ShardWorker)
        actors = [actor_cls.remote(job, w) for w in range(workers)]  # type: ignore[attr-defined]
        try:
            sessions = _schedule(actors, tasks, on_frames)
            shards: list[ShardInfo] = []
            for part in ray.get([a.close.remote() for a in actors]):
                if isinstance(part, _Failure):
                    raise error_from(part.kind, part.message)
                shards.extend(part)
            return EngineResult(sessions, shards)
        except BaseException:
            _abort(actors)
            raise
        finally:
            for a in actors:
                ray.kill(a)
    finally:
        if started:
            ray.shutdown()


def _schedule(
    actors: list[Any], tasks: Sequence[SessionTask], on_frames: ProgressFn
) -> list[ShardedSession]:
    import ray

    pending = list(reversed(tasks))
    running: dict[Any, int] = {}  # object ref → actor number
    results: list[ShardedSession] = []

    def submit(w: int) -> None:
        path, key = pending.pop()
        running[actors[w].session.remote(path, key)] = w

    for w in range(len(actors)):
        for _ in range(1 + PIPELINE_DEPTH):
            if pending:
                submit(w)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        w = running.pop(ready[0])
        try:
            res = ray.get(ready[0])
        except ray.exceptions.RayActorError as e:
            raise DatasetError(
                f"shard worker {w} died ({type(e).__name__}); nothing of this run was added "
                "to the dataset"
            ) from None
        if isinstance(res, _Failure):
            raise error_from(res.kind, res.message)
        results.append(res)
        on_frames(res.info.frames_written)
        if pending:
            submit(w)
    return results


def _abort(actors: list[Any]) -> None:
    import ray

    refs = [a.abort.remote() for a in actors]
    for ref in refs:
        # a dead actor has nothing left to abort
        with contextlib.suppress(Exception):
            ray.get(ref, timeout=30)
