"""Per-example losses. Each returns a ``[B]`` tensor so that the training loop
can weight examples and average over the global batch (tf.distribute)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

LossFn = Callable[[Any, Any], Any]

#: Keeps the gradient of sqrt finite when a prediction is exact.
_EPS = 1e-12


def euclidean(y_true: Any, y_pred: Any) -> Any:
    """TensorKart's loss: the distance between target and prediction vectors."""
    d = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(d), axis=-1), _EPS))


def mse(y_true: Any, y_pred: Any) -> Any:
    d = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
    return tf.reduce_mean(tf.square(d), axis=-1)


def crossentropy(y_true: Any, y_pred: Any) -> Any:
    """Categorical cross-entropy of softmax probabilities against one-hot
    targets (or integer class indices)."""
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0)
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == 1 or (y_true.shape.rank == 2 and y_true.shape[-1] == 1):
        y_true = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
    return -tf.reduce_sum(tf.cast(y_true, tf.float32) * tf.math.log(y_pred), axis=-1)


LOSSES: dict[str, LossFn] = {"euclidean": euclidean, "mse": mse, "crossentropy": crossentropy}


def get(name: str) -> LossFn:
    """The loss of a name :class:`~kartmodel.config.TrainConfig` accepted."""
    return LOSSES[name]
