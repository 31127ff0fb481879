"""Where training runs: the one place that picks the tf.distribute strategy and
the mixed-precision policy."""

from __future__ import annotations

import json
import os

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
