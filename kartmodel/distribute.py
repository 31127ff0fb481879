"""Where training runs: the one place that picks the tf.distribute strategy and
the mixed-precision policy, and how the input reaches the replicas (each
worker its own shard files; optionally through the tf.data service)."""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf


def choose_strategy() -> tf.distribute.Strategy:
    """``TF_CONFIG`` naming a cluster → MultiWorkerMirroredStrategy; several
    local GPUs (or several logical CPUs configured by the caller) →
    MirroredStrategy; otherwise the default single-device strategy."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    if sum(len(v) for v in cluster.values()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.get_strategy()


def use_mixed_precision(setting: str) -> bool:
    """``auto`` means on exactly when a GPU is there (float16 is slow on CPU)."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return bool(tf.config.list_physical_devices("GPU"))


def is_chief() -> bool:
    """Only the chief worker writes checkpoints, logs and the best model."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker"
        and task.get("index", 0) == 0
        and "chief" not in json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    )


# ---------------------------------------------------------------------------
# Input: each worker reads its own shards (issue 9)
# ---------------------------------------------------------------------------


class ShardingWarning(UserWarning):
    """Too few shard files for a per-worker split: every worker reads all of
    them and keeps every n-th batch element (tf.data's DATA auto-shard)."""


def cluster_workers() -> tuple[int, int]:
    """(number of training workers, this one's index among them) from
    ``TF_CONFIG``; (1, 0) without a cluster. The chief counts as worker 0."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = tf_config.get("cluster", {})
    names = [t for t in ("chief", "worker") if t in cluster]
    tasks = [(t, i) for t in names for i in range(len(cluster[t]))]
    if len(tasks) <= 1:
        return 1, 0
    task = tf_config.get("task", {})
    me = (task.get("type", "worker"), int(task.get("index", 0)))
    return len(tasks), tasks.index(me) if me in tasks else 0


def worker_shards(prep: Any, workers: int, index: int) -> Any | None:
    """``prep`` narrowed to worker ``index`` of ``workers``: every ``workers``-th
    shard file of each stratum the pass reads, and its share of the epoch.
    ``None`` when some stratum has fewer files than workers (no fair split)."""
    import dataclasses
    import math

    balanced = prep.balanced
    used = (
        [s for s, w in prep.plan.weights.items() if w > 0]
        if balanced
        else sorted({s.stratum for s, _ in prep.shards})
    )
    by_stratum = {s: [it for it in prep.shards if it[0].stratum == s] for s in used}
    if balanced:
        if any(len(items) < workers for items in by_stratum.values()):
            return None
    elif len(prep.shards) < workers:
        return None
    # Round-robin within each stratum (then over the whole list when not
    # balancing) so each worker gets the same mix of strata.
    ordered = [it for s in used for it in by_stratum[s]]
    mine = tuple(ordered[index::workers])
    cfg = prep.config
    share = None if cfg.epoch_samples is None else math.ceil(cfg.epoch_samples / workers)
    plan = dataclasses.replace(
        prep.plan, epoch_samples=math.ceil(prep.plan.epoch_samples / workers)
    )
    return dataclasses.replace(
        prep,
        shards=mine,
        plan=plan,
        config=dataclasses.replace(cfg, epoch_samples=share),
    )


def distribute_input(
    strategy: tf.distribute.Strategy,
    data: Any,
    data_service: str | None = None,
    job_name: str | None = None,
) -> Any:
    """A distributed dataset for ``strategy``. ``data`` is a loader
    :class:`~kartdata.loader.Prepared` (batch size = the global batch), or a ready
    ``tf.data.Dataset``. With several workers each reads its own shard files
    (see :func:`worker_shards`); with ``data_service`` (a dispatcher address,
    ``grpc://host:port`` or ``host:port``) reading, decoding and augmentation run
    on the tf.data service workers, not here.

    With several workers a pass is exactly ``ceil(samples / global batch)``
    steps on every worker, each worker's stream repeating if its share runs
    short: a worker that ran out first would be fed empty batches, which
    batch-norm layers reject, and the collectives would wait on it."""
    from kartdata.loader import Prepared, build

    if not isinstance(data, Prepared):
        return strategy.experimental_distribute_dataset(data)
    workers, index = cluster_workers()
    if workers > 1:
        steps = pass_steps(data)
        if strategy.num_replicas_in_sync % workers:
            raise ValueError(
                f"{strategy.num_replicas_in_sync} replicas cannot be split over {workers} workers"
            )
        mine = worker_shards(data, workers, index)
        if mine is not None:
            import dataclasses

            def per_worker(ctx: tf.distribute.InputContext) -> Any:
                batch = ctx.get_per_replica_batch_size(data.config.batch_size)
                prep = dataclasses.replace(
                    mine, config=dataclasses.replace(mine.config, batch_size=batch)
                )
                return _served(build(prep).repeat(), data_service, job_name, index)

            return _Steps(strategy.distribute_datasets_from_function(per_worker), steps)
        import warnings

        warnings.warn(
            f"{len(data.shards)} shard file(s) cannot be split over {workers} workers (some "
            "stratum has fewer files than workers): every worker reads all of them and "
            "keeps its share of the records. Shard with a smaller --shard-mb to avoid this.",
            ShardingWarning,
            stacklevel=2,
        )
        ds = build(data).repeat()
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return _Steps(
            strategy.experimental_distribute_dataset(
                _served(ds.with_options(options), data_service, job_name, index)
            ),
            steps,
        )
    return strategy.experimental_distribute_dataset(
        _served(build(data), data_service, job_name, index)
    )


def pass_steps(prep: Any) -> int:
    """Steps of one pass over a prepared load at its (global) batch size."""
    import math

    cfg = prep.config
    samples = prep.plan.epoch_samples if prep.balanced else (cfg.epoch_samples or prep.frames)
    return max(1, math.ceil(samples / cfg.batch_size))


class _Steps:
    """A distributed dataset cut to ``steps`` batches per iteration."""

    def __init__(self, dataset: Any, steps: int) -> None:
        self.dataset, self.steps = dataset, steps

    def __iter__(self) -> Any:
        it = iter(self.dataset)
        for _ in range(self.steps):
            try:
                yield next(it)
            except StopIteration:
                return


def _served(ds: Any, data_service: str | None, job_name: str | None, worker: int) -> Any:
    """``ds`` produced by the tf.data service at ``data_service`` (or itself)."""
    if not data_service:
        return ds
    address = data_service if "://" in data_service else f"grpc://{data_service}"
    return ds.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.OFF,
            service=address,
            job_name=None if job_name is None else f"{job_name}-w{worker}",
        )
    )
