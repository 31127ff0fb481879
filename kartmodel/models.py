"""The architectures by name, with the input, targets and loss each defaults to.

The table is plain data, so that a :class:`~kartmodel.config.TrainConfig` can
be made and checked without importing Keras; an architecture's module loads
only to build it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal, get_args

from kartdata.errors import KartError
from kartdata.preprocess import CTR_INPUT, PILOTNET_INPUT, InputSpec
from kartdata.targets import CLASS3, TENSORKART
from kartmodel.targets import TargetLayout

if TYPE_CHECKING:
    import keras

ModelName = Literal["pilotnet", "categorical", "sepnet"]
LossName = Literal["euclidean", "mse", "crossentropy"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)


@dataclass(frozen=True)
class Defaults:
    spec: InputSpec
    targets: str
    loss: LossName


#: Each architecture (the module ``kartmodel.<name>``) and its defaults.
ARCHITECTURES: dict[str, Defaults] = {
    "pilotnet": Defaults(PILOTNET_INPUT, TENSORKART, "euclidean"),
    "categorical": Defaults(CTR_INPUT, CLASS3, "crossentropy"),
    "sepnet": Defaults(PILOTNET_INPUT, TENSORKART, "euclidean"),
}


def defaults(name: str) -> Defaults:
    if name not in ARCHITECTURES:
        raise KartError(f"unknown model {name!r}; expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def module(name: str) -> ModuleType:
    defaults(name)
    return importlib.import_module(f"kartmodel.{name}")


def build(name: str, spec: InputSpec, layout: TargetLayout) -> keras.Model:
    return module(name).build(spec, layout)
