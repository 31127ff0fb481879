"""SepNet: a small residual net of depthwise-separable convolutions.

Wider feature maps than PilotNet for a similar number of multiply-adds
(separable convs cost ~1/8 of full ones), residual blocks so that the extra
depth trains, and a flattened (not globally pooled) last map, because where
the road bends in the frame is the signal. Works with any target layout.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from kartdata.preprocess import InputSpec
from kartmodel.heads import head
from kartmodel.targets import TargetLayout

#: Moving statistics settle within a short run (Keras' 0.99 needs hundreds of steps).
BN_MOMENTUM = 0.9

#: (filters, stride) of each stage after the stem.
STAGES: tuple[tuple[int, int], ...] = ((32, 2), (64, 2), (96, 2), (128, 2))


def _block(x: Any, filters: int, stride: int) -> Any:
    shortcut = x
    y = layers.SeparableConv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    y = layers.ReLU()(y)
    y = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, padding="same", use_bias=False)(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def build(spec: InputSpec, layout: TargetLayout, dropout: float = 0.2) -> keras.Model:
    inputs = keras.Input(spec.shape, name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    for filters, stride in STAGES:
        x = _block(x, filters, stride)
    x = layers.Conv2D(32, 1, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(inputs, head(x, layout), name="sepnet")
