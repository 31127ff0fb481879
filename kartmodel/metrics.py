"""Driving metrics beyond loss: steering MAE, left/straight/right confusion with
per-class precision and recall, button accuracy.

A low loss hid "always straight" models before, so every run reports
``balanced_accuracy`` (mean recall over the three classes: 1/3 for a model that
always answers the same) next to the loss.

Batches give sums (:func:`batch_stats`, traceable, reduced across replicas
with a plain SUM); :class:`Totals` accumulates them on the host and turns them
into rates. The same code serves training, validation and ``evaluate``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from kartdata.schema import STEERING_CLASSES, ClassThresholds
from kartdata.targets import CLASS3
from kartmodel.targets import TargetLayout

#: A pressed button's continuous output is above this (targets are 0/1).
BUTTON_THRESHOLD = 0.5


def steering_class(x: Any, thresholds: ClassThresholds) -> Any:
    """0 left, 1 straight, 2 right — the same rule the sharder used for strata."""
    x = tf.cast(x, tf.float32)
    return tf.where(x < thresholds.left_below, 0, tf.where(x > thresholds.right_above, 2, 1))


def batch_stats(
    layout: TargetLayout, thresholds: ClassThresholds, y_true: Any, y_pred: Any
) -> dict[str, Any]:
    """Sums over one batch: ``count``, ``confusion`` [3, 3] (true rows, predicted
    columns), and where the layout has them ``abs_err_x`` and ``button_correct``."""
    y_pred = tf.cast(y_pred, tf.float32)
    y_true = tf.cast(y_true, tf.float32)
    out: dict[str, Any] = {"count": tf.cast(tf.shape(y_pred)[0], tf.float32)}
    if layout.kind == CLASS3:
        if y_true.shape.rank == 1 or y_true.shape[-1] == 1:
            true_cls = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        else:
            true_cls = tf.argmax(y_true, axis=-1, output_type=tf.int32)
        pred_cls = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    else:
        i = layout.steering_index
        if i is not None:
            true_cls = steering_class(y_true[:, i], thresholds)
            pred_cls = steering_class(y_pred[:, i], thresholds)
            out["abs_err_x"] = tf.reduce_sum(tf.abs(y_pred[:, i] - y_true[:, i]))
        buttons = list(layout.button_indices.values())
        if buttons:
            t = tf.gather(y_true, buttons, axis=1) >= BUTTON_THRESHOLD
            p = tf.gather(y_pred, buttons, axis=1) >= BUTTON_THRESHOLD
            out["button_correct"] = tf.reduce_sum(tf.cast(t == p, tf.float32), axis=0)
        if i is None:
            return out
    out["confusion"] = tf.cast(
        tf.math.confusion_matrix(true_cls, pred_cls, num_classes=3), tf.float32
    )
    return out


class Totals:
    """Host-side sums of :func:`batch_stats` (plus the weighted loss)."""

    def __init__(self, layout: TargetLayout) -> None:
        self.layout = layout
        self.count = 0.0
        self.loss_sum = 0.0
        self.loss_weight = 0.0
        self.abs_err_x = 0.0
        self.confusion = np.zeros((3, 3))
        self.button_correct = np.zeros(len(layout.button_indices))

    def add(self, stats: dict[str, Any]) -> None:
        self.count += float(stats["count"])
        if "loss_sum" in stats:
            self.loss_sum += float(stats["loss_sum"])
            self.loss_weight += float(stats["loss_weight"])
        if "abs_err_x" in stats:
            self.abs_err_x += float(stats["abs_err_x"])
        if "confusion" in stats:
            self.confusion += np.asarray(stats["confusion"])
        if "button_correct" in stats:
            self.button_correct += np.asarray(stats["button_correct"])

    def merge(self, other: Totals) -> None:
        self.count += other.count
        self.loss_sum += other.loss_sum
        self.loss_weight += other.loss_weight
        self.abs_err_x += other.abs_err_x
        self.confusion += other.confusion
        self.button_correct += other.button_correct

    def result(self) -> dict[str, float]:
        """Scalar metrics (NaN where undefined, e.g. recall of an absent class)."""
        out: dict[str, float] = {"examples": self.count}
        if self.loss_weight > 0:
            out["loss"] = self.loss_sum / self.loss_weight
        if self.count == 0:
            return out
        has_steering = self.layout.kind == CLASS3 or self.layout.steering_index is not None
        if self.layout.steering_index is not None:
            out["steer_mae"] = self.abs_err_x / self.count
        if has_steering:
            c = self.confusion
            out["accuracy"] = float(np.trace(c) / max(c.sum(), 1.0))
            recalls = []
            for k, name in enumerate(STEERING_CLASSES):
                actual, predicted, hit = c[k].sum(), c[:, k].sum(), c[k, k]
                recall = hit / actual if actual else math.nan
                precision = hit / predicted if predicted else (0.0 if actual else math.nan)
                out[f"{name}_precision"] = float(precision)
                out[f"{name}_recall"] = float(recall)
                if actual:
                    recalls.append(recall)
            out["balanced_accuracy"] = float(np.mean(recalls)) if recalls else math.nan
        if len(self.button_correct):
            acc = self.button_correct / self.count
            for name, a in zip(self.layout.button_indices, acc, strict=True):
                out[f"{name}_accuracy"] = float(a)
            out["button_accuracy"] = float(acc.mean())
        return out

    def confusion_json(self) -> dict[str, Any]:
        return {
            "classes": list(STEERING_CLASSES),
            "rows": "true",
            "columns": "predicted",
            "counts": self.confusion.astype(int).tolist(),
        }
