"""kartmodel: Keras models trained on kartdata datasets, evaluated, exported.

The names below load on first use, so ``import kartmodel`` stays fast and does
not import TensorFlow until a function that needs it runs::

    import kartmodel
    result = kartmodel.train(kartmodel.TrainConfig("data/ds", model="sepnet"), "runs/a")
    kartmodel.evaluate("runs/a", "data/ds")
    path = kartmodel.export("runs/a", "keras")
    model = kartmodel.load_artifact(path)

The parts: ``config`` (what trains), ``trainer`` (the loop), ``run`` (a run's
directory), ``evaluation``, ``artifact`` (exported models that carry their
preprocessing), ``models`` (the architectures by name), ``targets``,
``losses``, ``metrics``, ``distribute``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Artifact",
    "DataOptions",
    "Evaluation",
    "Run",
    "TargetLayout",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "evaluate",
    "export",
    "load_artifact",
    "train",
]

#: Where each public name lives (imported on first use): module, and the
#: attribute there when it has another name.
_HOME: dict[str, tuple[str, str]] = {
    "TrainConfig": ("kartmodel.config", "TrainConfig"),
    "DataOptions": ("kartmodel.config", "DataOptions"),
    "train": ("kartmodel.trainer", "train"),
    "TrainResult": ("kartmodel.trainer", "TrainResult"),
    "Run": ("kartmodel.run", "Run"),
    "evaluate": ("kartmodel.evaluation", "evaluate"),
    "Evaluation": ("kartmodel.evaluation", "Evaluation"),
    "export": ("kartmodel.artifact", "export"),
    "load_artifact": ("kartmodel.artifact", "load_artifact"),
    "Artifact": ("kartmodel.artifact", "Artifact"),
    "TargetLayout": ("kartmodel.targets", "TargetLayout"),
    "build_model": ("kartmodel.models", "build"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'kartmodel' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
