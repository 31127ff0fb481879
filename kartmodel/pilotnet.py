"""PilotNet as TensorKart trained it (NVIDIA's end-to-end steering network).

Input 66x200x3 in [0, 1] → batch norm → conv 5x5/2 ×24, ×36, ×48 → conv 3x3 ×64,
×64 → dense 1164, 100, 50, 10 with dropout → five softsign outputs
``[x, y, a, b, r]`` trained with the Euclidean-distance loss.
"""

from __future__ import annotations

import keras
from keras import layers

from kartdata.preprocess import InputSpec
from kartmodel.heads import head
from kartmodel.targets import TargetLayout

#: TensorKart's keep probability was 0.8.
DROPOUT = 0.2


def build(spec: InputSpec, layout: TargetLayout, dropout: float = DROPOUT) -> keras.Model:
    inputs = keras.Input(spec.shape, name="image")
    x = layers.BatchNormalization()(inputs)
    for filters in (24, 36, 48):
        x = layers.Conv2D(filters, 5, strides=2, activation="relu")(x)
        x = layers.BatchNormalization()(x)
    for _ in range(2):
        x = layers.Conv2D(64, 3, activation="relu")(x)
        x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    for units in (1164, 100, 50, 10):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, head(x, layout), name="pilotnet")
