"""kartdata: recordings → validated, balanced, compressed TFRecord shards → ``tf.data``.

The names below load on first use, so ``import kartdata`` stays fast and does
not import TensorFlow::

    import kartdata
    ds = kartdata.load("data/ds", split="train", batch_size=64, balance="uniform")
    df = kartdata.frames("data/ds")

The stages, one module (or package) each: ``sources`` (read recordings),
``validate``, ``shard`` (write shards), ``manifest`` / ``index`` / ``tfrecord``
(the on-disk formats), ``loader`` (``tf.data``), ``views`` (pandas),
``plots`` (matplotlib).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AugmentConfig",
    "DatasetError",
    "InputSpec",
    "KartError",
    "LoadConfig",
    "Manifest",
    "SplitConfig",
    "TargetConfig",
    "balance_report",
    "dataset_errors",
    "device_stage",
    "frame_image",
    "frames",
    "load",
    "sessions",
]

#: Where each public name lives (imported on first use).
_HOME: dict[str, str] = {
    "load": "kartdata.loader",
    "LoadConfig": "kartdata.loader",
    "balance_report": "kartdata.loader",
    "dataset_errors": "kartdata.loader",
    "device_stage": "kartdata.loader",
    "AugmentConfig": "kartdata.augment",
    "TargetConfig": "kartdata.targets",
    "SplitConfig": "kartdata.split",
    "frames": "kartdata.views",
    "sessions": "kartdata.views",
    "frame_image": "kartdata.views",
    "InputSpec": "kartdata.preprocess",
    "Manifest": "kartdata.manifest",
    "DatasetError": "kartdata.errors",
    "KartError": "kartdata.errors",
}


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'kartdata' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
