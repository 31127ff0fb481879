"""Training-time image augmentation, in two halves: the mirror, which changes
the labels and so is drawn in the loader beside the pad context (and, with
``LoadConfig.device_stage``, applied to the images by the train step after
preprocessing, from a per-example flag), and the photometric part — contrast,
brightness, shift — on preprocessed floats, which the loader runs itself or
leaves to the train step (:func:`kartdata.loader.device_stage`).

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
    → both augmented. ``seed`` is an int tensor of shape ``[2]``.

    The same as :func:`mirror_batch` then :func:`photometric_batch` with one seed."""
    images, context = mirror_batch(images, context, seed, config)
    return photometric_batch(images, seed, config), context


def mirror_batch(images: Any, context: Any, seed: Any, config: AugmentConfig) -> tuple[Any, Any]:
    """The horizontal flip alone: it must run where the pad context is,
    because the flip changes the labels. Meant for small float batches: the
    ``tf.where`` copies every pixel twice, which on uint8 frames at their
    stored size costs more than decoding them (so the device-stage loader
    mirrors only the pads, and the train step flips the preprocessed images)."""
    import tensorflow as tf

    if config.mirror <= 0:
        return images, context
    flip = mirror_draw(tf.shape(images)[0], seed, config)
    return flip_images(images, flip), flip_pads(context, flip)


def flip_images(images: Any, flip: Any) -> Any:
    """``images`` ``[N, H, W, C]`` with those where ``flip`` (bool ``[N]``) is set mirrored."""
    import tensorflow as tf

    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def flip_pads(context: Any, flip: Any) -> Any:
    """``context`` ``[N, K, 16]`` with the pads of the flagged examples mirrored."""
    import tensorflow as tf

    return tf.where(flip[:, None, None], mirror_pads(context), context)


def mirror_draw(n: Any, seed: Any, config: AugmentConfig) -> Any:
    """Which of ``n`` examples to mirror: a bool ``[n]``, true with probability
    ``config.mirror``; the draw :func:`mirror_batch` makes with ``seed``."""
    import tensorflow as tf

    return tf.random.stateless_uniform([n], _seeds(seed)[0]) < config.mirror


def photometric_batch(images: Any, seed: Any, config: AugmentConfig) -> Any:
    """Contrast, brightness and shift of ``[N, H, W, 3]`` floats in [0, 1];
    labels do not change, so this can run anywhere after preprocessing (the
    trainer runs it in its train step, on the accelerator)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    _, s_bright, s_contrast, s_shift = _seeds(seed)
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
    return images


def _seeds(seed: Any) -> list[Any]:
    """Four independent seeds (mirror, brightness, contrast, shift) from one:
    both halves of :func:`augment_batch` draw from the same split, so calling
    them separately with one seed draws exactly what the whole does."""
    import tensorflow as tf

    return tf.unstack(tf.random.split(seed, 4))


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
