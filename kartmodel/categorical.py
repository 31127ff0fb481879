"""The CTR-AI classifier: left / straight / right from a 90x160 frame.

CTR-AI trained a tflearn GoogLeNet on 160x90 frames with one-hot
``[left, forward, right]`` labels; that network is far too heavy for the CPU
machines this runs on, so this keeps its input, labels and cross-entropy and
uses a compact conv net. It accepts 66x200 input as well.
"""

from __future__ import annotations

import keras
from keras import layers

from kartdata.preprocess import InputSpec
from kartmodel.heads import head
from kartmodel.targets import TargetLayout

#: Moving statistics settle within a short run (Keras' 0.99 needs hundreds of steps).
BN_MOMENTUM = 0.9


def build(spec: InputSpec, layout: TargetLayout, dropout: float = 0.3) -> keras.Model:
    inputs = keras.Input(spec.shape, name="image")
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(inputs)
    for filters, size in ((32, 5), (48, 5), (64, 3), (96, 3)):
        x = layers.Conv2D(filters, size, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, head(x, layout), name="categorical")
