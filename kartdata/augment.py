"""Training-time image augmentation, on preprocessed batches.

Every random draw is stateless and takes its seed from the caller, so a loader
run with a seed augments identically every time. A mirrored image gets its
controls mirrored too (x negated, left/right buttons swapped), and the targets
are computed afterwards from the mirrored pads — so the steering class swaps
left/right by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kartdata.targets import mirror_pads


@dataclass(frozen=True)
class AugmentConfig:
    """``mirror``: probability of a horizontal flip. ``brightness``: largest
    added offset (images are in [0, 1]). ``contrast``: largest relative change
    of contrast. ``shift``: largest translation, as a fraction of the size."""

    mirror: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.2
    shift: float = 0.04


def augment_batch(images: Any, context: Any, seed: Any, config: AugmentConfig) -> tuple[Any, Any]:
    """``images`` ``[N, H, W, 3]`` float in [0, 1] and ``context`` ``[N, K, 16]``
    → both augmented. ``seed`` is an int tensor of shape ``[2]``."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    s_mirror, s_bright, s_contrast, s_shift = tf.unstack(tf.random.split(seed, 4))

    if config.mirror > 0:
        flip = tf.random.stateless_uniform([n], s_mirror) < config.mirror
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        context = tf.where(flip[:, None, None], mirror_pads(context), context)

    if config.contrast > 0:
        factor = tf.random.stateless_uniform(
            [n, 1, 1, 1], s_contrast, 1.0 - config.contrast, 1.0 + config.contrast
        )
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor + mean
    if config.brightness > 0:
        delta = tf.random.stateless_uniform(
            [n, 1, 1, 1], s_bright, -config.brightness, config.brightness
        )
        images = images + delta
    if config.contrast > 0 or config.brightness > 0:
        images = tf.clip_by_value(images, 0.0, 1.0)

    if config.shift > 0:
        images = _shift(images, s_shift, config.shift)
    return images, context


def _shift(images: Any, seed: Any, fraction: float) -> Any:
    """Translate each image by up to ``fraction`` of its size, repeating edge pixels."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    hw = tf.cast(tf.shape(images)[1:3], tf.float32)
    limits = tf.round(hw * fraction)
    offsets = tf.round(tf.random.stateless_uniform([n, 2], seed, -1.0, 1.0) * limits)
    dy, dx = offsets[:, 0], offsets[:, 1]
    one, zero = tf.ones([n]), tf.zeros([n])
    # Projective transform rows map output (x, y) to input (x - dx, y - dy).
    transforms = tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="NEAREST",
    )
