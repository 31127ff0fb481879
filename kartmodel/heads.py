"""The output layer every architecture ends with, chosen by the target layout."""

from __future__ import annotations

from typing import Any

import keras

from kartdata.targets import CLASS3
from kartmodel.targets import TargetLayout


def head(x: Any, layout: TargetLayout) -> Any:
    """softsign per output for continuous targets (TensorKart: axes in [-1, 1],
    buttons 0/1), softmax over left/straight/right for ``class3``. Float32 even
    under mixed precision, so the loss sees full-precision outputs."""
    if layout.kind == CLASS3:
        return keras.layers.Dense(3, activation="softmax", dtype="float32", name="classes")(x)
    return keras.layers.Dense(layout.size, activation="softsign", dtype="float32", name="outputs")(
        x
    )
