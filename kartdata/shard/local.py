"""The local engine: sessions over persistent worker processes on this machine
(or in this process, with ``workers=0``).

Workers never import TensorFlow (examples and files are written by
:mod:`kartdata.tfrecord`), so each stays at tens of MB and starts in well under
a second.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import traceback
from collections.abc import Sequence
from typing import Any

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


def run(
    job: ShardJob, tasks: Sequence[SessionTask], workers: int, on_frames: ProgressFn
) -> EngineResult:
    workers = min(max(0, workers), len(tasks))
    if workers == 0:
        return _run_inline(job, tasks, on_frames)
    return _run_processes(job, tasks, workers, on_frames)


def _run_inline(job: ShardJob, tasks: Sequence[SessionTask], on_frames: ProgressFn) -> EngineResult:
    with open_writers(job, 0) as writers:
        sessions = [shard_task(job, t, writers, on_frames, in_worker=False) for t in tasks]
    return EngineResult(sessions, writers.finished)


def _worker_main(job: ShardJob, worker: int, tasks: Any, results: Any, parent: int) -> None:
    """A persistent worker: sessions from ``tasks`` until a ``None``."""
    keep_freed_memory()
    writers = open_writers(job, worker)
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the driver is gone (killed): stop
                    writers.abort()
                    return
                continue
            if task is None:
                break
            res = shard_task(
                job,
                SessionTask(*task),
                writers,
                lambda n: results.put(("progress", worker, n)),
                in_worker=True,
            )
            results.put(("session", worker, res))
        results.put(("done", worker, writers.close()))
    except KartError as e:
        writers.abort()
        results.put(("error", worker, (type(e).__name__, str(e))))
    except (OSError, MemoryError) as e:  # a full disk, a read-only one, a refusal
        writers.abort()
        results.put(("error", worker, ("DatasetError", str(fault(e, job.dataset)))))
    except BaseException:
        writers.abort()
        results.put(("crash", worker, traceback.format_exc()))


def _run_processes(
    job: ShardJob, todo: Sequence[SessionTask], workers: int, on_frames: ProgressFn
) -> EngineResult:
    # spawn, not fork: a forked child of a process that has TensorFlow loaded
    # (a notebook, a test run) inherits its threads' locks and can hang.
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for t in todo:
        tasks.put(tuple(t))
    for _ in range(workers):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(job, w, tasks, results, os.getpid()),
            name=f"kartdata-shard-w{w:02d}",
            daemon=True,
        )
        for w in range(workers)
    ]
    sessions: list[ShardedSession] = []
    shards: list[ShardInfo] = []
    done: set[int] = set()
    try:
        for p in procs:
            p.start()
        while len(done) < workers:
            try:
                kind, worker, payload = results.get(timeout=0.5)
            except queue.Empty:
                for w, p in enumerate(procs):
                    if w not in done and not p.is_alive() and p.exitcode not in (0, None):
                        raise DatasetError(_death(job.dataset, w, p.pid, p.exitcode)) from None
                continue
            if kind == "progress":
                on_frames(payload)
            elif kind == "session":
                sessions.append(payload)
            elif kind == "done":
                shards.extend(payload)
                done.add(worker)
            elif kind == "error":
                raise error_from(*payload)
            else:
                raise RuntimeError(f"shard worker {worker} failed:\n{payload}")
        return EngineResult(sessions, shards)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=30)
        tasks.close()
        results.close()


def _death(dataset: str, worker: int, pid: int | None, exitcode: int) -> str:
    how = f"exited with code {exitcode}"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"was killed by {name}"
        if -exitcode == signal.SIGKILL:
            how += " (what the kernel's out-of-memory killer sends: see `dmesg`)"
    return f"{dataset}: shard worker {worker} (pid {pid}) {how}; nothing was added to the dataset"
