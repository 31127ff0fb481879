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

The turn (``AugmentConfig.turn``, off by default) is the other label-changing
part: PilotNet's side cameras without the cameras. A view slid sideways is
what the camera would see had the kart been turned off its line; the label
steers back, so the demonstrations hold recoveries the expert never needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kartdata.schema import PAD_INDEX
from kartdata.targets import mirror_pads

#: A screen region as fractions of the image: (top, left, bottom, right).
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class AugmentConfig:
    """``mirror``: probability of a horizontal flip. ``brightness``: largest
    added offset (images are in [0, 1]). ``contrast``: largest relative change
    of contrast. ``shift``: largest translation, as a fraction of the size.

    ``turn``: largest sideways slide of the view, as a fraction of its width,
    drawn uniformly for a ``turn_share`` of the examples; a slide of the whole
    ``turn`` adds ``turn_steer`` to the steering (x) of every pad in the
    example's context, clipped to [-1, 1]: the world sliding right is the
    camera turned left, so the label steers right. ``turn_keep``: regions that
    move with the camera, not the world (a chase camera's own kart, the HUD),
    kept where they are so that a turned view looks like a real one; boxes
    are fractions of the model's input (after any crop)."""

    mirror: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.2
    shift: float = 0.04
    turn: float = 0.0
    turn_steer: float = 1.0
    turn_share: float = 0.5
    turn_keep: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        for name in ("mirror", "turn_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment {name} {getattr(self, name)} is not in [0, 1]")
        for name in ("brightness", "contrast", "shift", "turn"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"augment {name} {getattr(self, name)} is not in [0, 1)")
        if not 0 <= self.turn_steer <= 2:
            raise ValueError(f"augment turn_steer {self.turn_steer} is not in [0, 2]")
        object.__setattr__(self, "turn_keep", tuple(tuple(map(float, b)) for b in self.turn_keep))
        for box in self.turn_keep:
            top, left, bottom, right = box if len(box) == 4 else (1, 1, 0, 0)
            if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
                raise ValueError(
                    f"augment turn_keep box {box} is not (top, left, bottom, right) "
                    "fractions with top < bottom and left < right"
                )

    @property
    def turns(self) -> bool:
        return self.turn > 0 and self.turn_share > 0 and self.turn_steer > 0


def format_boxes(boxes: tuple[Box, ...]) -> str:
    """The text :func:`parse_boxes` reads."""
    return ";".join(",".join(f"{v:g}" for v in box) for box in boxes)


def parse_boxes(text: str) -> tuple[Box, ...]:
    """``"top,left,bottom,right;..."`` (fractions) → boxes; a one-line
    ``ValueError`` for anything else."""
    boxes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            values = tuple(float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"box {part!r} is not four numbers top,left,bottom,right") from None
        if len(values) != 4:
            raise ValueError(f"box {part!r} is not four numbers top,left,bottom,right")
        boxes.append(values)
    AugmentConfig(turn_keep=tuple(boxes))  # validates them
    return tuple(boxes)  # type: ignore[arg-type]


def augment_batch(images: Any, context: Any, seed: Any, config: AugmentConfig) -> tuple[Any, Any]:
    """``images`` ``[N, H, W, 3]`` float in [0, 1] and ``context`` ``[N, K, 16]``
    → both augmented. ``seed`` is an int tensor of shape ``[2]``.

    The same as :func:`mirror_batch`, :func:`turn_batch` then
    :func:`photometric_batch` with one seed."""
    images, context = mirror_batch(images, context, seed, config)
    images, context = turn_batch(images, context, seed, config)
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


def turn_batch(images: Any, context: Any, seed: Any, config: AugmentConfig) -> tuple[Any, Any]:
    """The turn alone (see :class:`AugmentConfig`): like the mirror it changes
    the labels, so it runs where the pad context is."""
    if not config.turns:
        return images, context
    import tensorflow as tf

    amount = turn_draw(tf.shape(images)[0], seed, config)
    return turn_images(images, amount, config), turn_pads(context, amount, config)


def turn_draw(n: Any, seed: Any, config: AugmentConfig) -> Any:
    """Each of ``n`` examples' slide as a share of ``config.turn``: float
    ``[n]`` in [-1, 1], positive sliding the world right; 0 for the examples
    left as they are (``1 - turn_share`` of them)."""
    import tensorflow as tf

    s = tf.random.split(_seeds(seed)[4], 2)
    amount = tf.random.stateless_uniform([n], s[0], -1.0, 1.0)
    chosen = tf.random.stateless_uniform([n], s[1]) < config.turn_share
    return tf.where(chosen, amount, tf.zeros_like(amount))


def turn_pads(context: Any, amount: Any, config: AugmentConfig) -> Any:
    """``context`` ``[N, K, 16]`` with ``turn_steer * amount`` added to x."""
    import tensorflow as tf

    i = PAD_INDEX["x"]
    steer = config.turn_steer * tf.cast(amount, context.dtype)[:, None]
    x = tf.clip_by_value(context[..., i] + steer, -1.0, 1.0)
    return tf.concat([context[..., :i], x[..., None], context[..., i + 1 :]], axis=-1)


def turn_images(images: Any, amount: Any, config: AugmentConfig) -> Any:
    """``images`` ``[N, H, W, C]`` slid right by ``amount * turn`` of their
    width (left where negative; the edge column repeated into the gap), with
    the ``turn_keep`` regions as they were. Where a kept region's pixels
    would have slid to, the view is left as it was too: a second, slid copy
    of the kart or the minimap is never drawn."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    dx = tf.round(tf.cast(amount, tf.float32) * config.turn * tf.cast(w, tf.float32))
    slid = _translate(images, dx, tf.zeros([n]))
    if not config.turn_keep:
        return slid
    rows = (tf.cast(tf.range(h), tf.float32) + 0.5) / tf.cast(h, tf.float32)
    cols = (tf.cast(tf.range(w), tf.float32) + 0.5) / tf.cast(w, tf.float32)
    keep = tf.zeros([h, w], tf.bool)
    for top, left, bottom, right in config.turn_keep:
        inside_rows = (rows >= top) & (rows < bottom)
        inside_cols = (cols >= left) & (cols < right)
        keep = keep | (inside_rows[:, None] & inside_cols[None, :])
    kept = tf.cast(tf.tile(keep[None, :, :, None], [n, 1, 1, 1]), images.dtype)
    keep = (kept > 0) | (_translate(kept, dx, tf.zeros([n]), "CONSTANT") > 0)
    return tf.where(keep, images, slid)


def photometric_batch(images: Any, seed: Any, config: AugmentConfig) -> Any:
    """Contrast, brightness and shift of ``[N, H, W, 3]`` floats in [0, 1];
    labels do not change, so this can run anywhere after preprocessing (the
    trainer runs it in its train step, on the accelerator)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    _, s_bright, s_contrast, s_shift, _ = _seeds(seed)
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
    """Five independent seeds (mirror, brightness, contrast, shift, turn) from
    one: every part of :func:`augment_batch` draws from the same split, so
    calling them separately with one seed draws exactly what the whole does."""
    import tensorflow as tf

    return tf.unstack(tf.random.split(seed, 5))


def _shift(images: Any, seed: Any, fraction: float) -> Any:
    """Translate each image by up to ``fraction`` of its size, repeating edge pixels."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    hw = tf.cast(tf.shape(images)[1:3], tf.float32)
    limits = tf.round(hw * fraction)
    offsets = tf.round(tf.random.stateless_uniform([n, 2], seed, -1.0, 1.0) * limits)
    return _translate(images, offsets[:, 1], offsets[:, 0])


def _translate(images: Any, dx: Any, dy: Any, fill_mode: str = "NEAREST") -> Any:
    """Each image moved by whole pixels ``dx`` right and ``dy`` down (float
    ``[N]``); the gap is the edge repeated (``NEAREST``) or 0 (``CONSTANT``)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    one, zero = tf.ones([n]), tf.zeros([n])
    # Projective transform rows map output (x, y) to input (x - dx, y - dy).
    transforms = tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode=fill_mode,
    )
