"""kartdata: recordings → validated, balanced, compressed TFRecord shards → ``tf.data``.

The names below load on first use, so ``import kartdata`` stays fast and does
not import TensorFlow::

    import kartdata
    ds = kartdata.load("data/ds", split="train", batch_size=64, balance="uniform")
    df = kartdata.frames("data/ds")
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

#: Public name → (module, attribute); an empty attribute means the module
#: itself, for the submodules that are also called as functions (see
#: :func:`_callable_module`).
_LAZY: dict[str, tuple[str, str]] = {
    "load": ("kartdata.load", ""),
    "LoadConfig": ("kartdata.load", "LoadConfig"),
    "balance_report": ("kartdata.load", "balance_report"),
    "dataset_errors": ("kartdata.load", "dataset_errors"),
    "device_stage": ("kartdata.load", "device_stage"),
    "AugmentConfig": ("kartdata.augment", "AugmentConfig"),
    "TargetConfig": ("kartdata.targets", "TargetConfig"),
    "SplitConfig": ("kartdata.split", "SplitConfig"),
    "frames": ("kartdata.frames", ""),
    "sessions": ("kartdata.frames", "sessions"),
    "frame_image": ("kartdata.frames", "frame_image"),
    "InputSpec": ("kartdata.preprocess", "InputSpec"),
    "Manifest": ("kartdata.manifest", "Manifest"),
    "DatasetError": ("kartdata.errors", "DatasetError"),
    "KartError": ("kartdata.errors", "KartError"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'kartdata' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def _callable_module(name: str, func: Callable[..., Any]) -> None:
    """Make module ``name`` callable as ``func``.

    ``kartdata.load(...)`` and ``kartdata.frames(...)`` are functions of
    modules with the same names. Once such a module is imported, Python binds
    the package attribute to the module, shadowing any function of that name;
    a callable module is right whichever is imported first.
    """

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    sys.modules[name].__class__ = CallableModule


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
