"""Models, losses and metrics on known inputs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kartdata.errors import KartError
from kartdata.preprocess import CTR_INPUT, PILOTNET_INPUT, InputSpec
from kartdata.schema import ClassThresholds
from kartmodel import losses, models
from kartmodel.metrics import Totals, batch_stats
from kartmodel.targets import TargetLayout

TK = TargetLayout.parse("tensorkart")
C3 = TargetLayout.parse("class3")


def test_pilotnet_is_tensorkarts_network() -> None:
    m = models.build("pilotnet", PILOTNET_INPUT, TK)
    assert m.input_shape == (None, 66, 200, 3)
    assert m.output_shape == (None, 5)
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (24, (5, 5), (2, 2)),
        (36, (5, 5), (2, 2)),
        (48, (5, 5), (2, 2)),
        (64, (3, 3), (1, 1)),
        (64, (3, 3), (1, 1)),
    ]
    dense = [layer.units for layer in m.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [1164, 100, 50, 10, 5]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in m.layers) == 4
    y = m(np.random.default_rng(0).random((3, 66, 200, 3), dtype=np.float32) * 50).numpy()
    assert y.shape == (3, 5) and np.all(np.abs(y) < 1)  # softsign


@pytest.mark.parametrize(
    ("name", "spec"), [("categorical", CTR_INPUT), ("categorical", PILOTNET_INPUT)]
)
def test_categorical_gives_class_probabilities(name: str, spec: InputSpec) -> None:
    m = models.build(name, spec, C3)
    y = m(np.zeros((2, *spec.shape), np.float32)).numpy()
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_sepnet_is_smaller_than_pilotnet_and_takes_any_layout() -> None:
    small = models.build("sepnet", PILOTNET_INPUT, TK)
    assert small.count_params() < models.build("pilotnet", PILOTNET_INPUT, TK).count_params() / 5
    assert models.build("sepnet", CTR_INPUT, C3).output_shape == (None, 3)
    assert models.build("sepnet", PILOTNET_INPUT, TargetLayout.parse("x,a")).output_shape == (
        None,
        2,
    )


def test_euclidean_loss_of_known_vectors() -> None:
    y_true = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0.5, 0, 1, 0, 0]], np.float32)
    y_pred = np.array([[3, 4, 0, 0, 0], [1, 1, 1, 1, 1], [0.5, 0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(losses.euclidean(y_true, y_pred).numpy(), [5, 0, 1], atol=1e-5)
    np.testing.assert_allclose(
        losses.mse(y_true, y_pred).numpy(), [25 / 5, 0, 1 / 5], rtol=1e-6, atol=1e-7
    )
    # an exact prediction must not poison the gradient with NaN (d sqrt(0))
    v = tf.Variable(y_true)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.euclidean(y_true, v))
    assert np.all(np.isfinite(tape.gradient(loss, v).numpy()))


def test_crossentropy_of_known_probabilities() -> None:
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]], np.float32)
    onehot = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    expect = [-math.log(0.5), -math.log(0.1)]
    np.testing.assert_allclose(losses.crossentropy(onehot, probs).numpy(), expect, rtol=1e-5)
    np.testing.assert_allclose(
        losses.crossentropy(np.array([0, 2]), probs).numpy(), expect, rtol=1e-5
    )


def _totals(layout: TargetLayout, y_true: np.ndarray, y_pred: np.ndarray) -> Totals:
    t = Totals(layout)
    stats = batch_stats(layout, ClassThresholds(), y_true, y_pred)
    t.add({k: np.asarray(v) for k, v in stats.items()})
    return t


def test_always_straight_is_exposed_by_balanced_accuracy() -> None:
    # 2 left, 6 straight, 2 right; the model always answers straight
    x = np.array([-0.8, -0.5, 0, 0, 0.1, -0.1, 0, 0.05, 0.6, 0.9], np.float32)
    y_true = np.stack([x, 0 * x, np.ones_like(x), 0 * x, 0 * x], axis=1)
    y_pred = np.zeros_like(y_true)
    y_pred[:, 2] = [0.9] * 7 + [0.1] * 3  # gas right 7 of 10 times; b, r right always
    m = _totals(TK, y_true, y_pred).result()
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["straight_recall"] == 1.0 and m["left_recall"] == 0.0 and m["right_recall"] == 0.0
    assert m["straight_precision"] == pytest.approx(0.6)
    assert m["left_precision"] == 0.0  # never predicted, but present
    assert m["steer_mae"] == pytest.approx(np.abs(x).mean(), rel=1e-6)
    assert m["a_accuracy"] == pytest.approx(0.7)
    assert m["b_accuracy"] == 1.0 and m["r_accuracy"] == 1.0
    assert m["button_accuracy"] == pytest.approx((0.7 + 1 + 1) / 3)


def test_class3_confusion_from_probabilities() -> None:
    y_true = np.eye(3, dtype=np.float32)[[0, 0, 1, 2, 2, 2]]
    y_pred = np.eye(3, dtype=np.float32)[[0, 1, 1, 2, 2, 0]] * 0.8 + 0.05
    t = _totals(C3, y_true, y_pred)
    assert t.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    m = t.result()
    assert m["left_recall"] == 0.5 and m["right_recall"] == pytest.approx(2 / 3)
    assert m["left_precision"] == 0.5 and m["straight_precision"] == 0.5
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert "steer_mae" not in m and "button_accuracy" not in m


def test_target_layouts() -> None:
    assert TK.names == ("x", "y", "a", "b", "r") and TK.steering_index == 0
    assert list(TK.button_indices) == ["a", "b", "r"]
    assert C3.kind == "class3" and C3.loader_targets == "class3"
    sub = TargetLayout.parse("x,a")
    assert sub.loader_targets == ("x", "a") and sub.button_indices == {"a": 1}
    with pytest.raises(KartError, match="pad fields"):
        TargetLayout.parse("x,throttle")
