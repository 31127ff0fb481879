"""The architectures by name, with the input, targets and loss each defaults to."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import keras

from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartmodel import categorical, pilotnet, sepnet
from kartmodel.targets import TargetLayout

ARCHITECTURES: dict[str, ModuleType] = {
    "pilotnet": pilotnet,
    "categorical": categorical,
    "sepnet": sepnet,
}


@dataclass(frozen=True)
class Defaults:
    spec: InputSpec
    targets: str
    loss: str


def module(name: str) -> ModuleType:
    if name not in ARCHITECTURES:
        raise KartError(f"unknown model {name!r}; expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def defaults(name: str) -> Defaults:
    m = module(name)
    return Defaults(m.DEFAULT_INPUT, m.DEFAULT_TARGETS, m.DEFAULT_LOSS)


def build(name: str, spec: InputSpec, layout: TargetLayout) -> keras.Model:
    return module(name).build(spec, layout)
