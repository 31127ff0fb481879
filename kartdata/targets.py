"""What a model learns to predict, computed from a record's ``context``.

Each record carries the pads of frames t-R … t+R of its session, so temporal
label smoothing (a mean over a window of neighbouring frames) and action
lookahead (the pad k frames later) are chosen here, at load time, without
re-sharding. Everything works on batches: ``context`` is ``[N, 2R+1, 16]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from kartdata.errors import DatasetError
from kartdata.schema import PAD_FIELDS, PAD_INDEX, STEERING_CLASSES, ClassThresholds

#: The named target kinds (any other kind is a tuple of pad field names).
#: TensorKart's five outputs (:data:`TENSORKART_FIELDS`).
TENSORKART: Final = "tensorkart"
#: CTR-AI's three steering classes, left/straight/right, from x.
CLASS3: Final = "class3"

#: TensorKart's output vector: stick x, stick y, A, B, R.
TENSORKART_FIELDS: tuple[str, ...] = ("x", "y", "a", "b", "r")

#: Pad fields that trade places under a horizontal mirror.
MIRROR_SWAPS: tuple[tuple[str, str], ...] = (("dpad_left", "dpad_right"), ("c_left", "c_right"))
#: Pad fields whose sign flips under a horizontal mirror.
MIRROR_NEGATE: tuple[str, ...] = ("x",)


@dataclass(frozen=True)
class TargetConfig:
    """``kind``: ``"tensorkart"`` (``[x, y, a, b, r]``), ``"class3"``
    (left/straight/right from x, with the dataset's thresholds), or a tuple of
    pad field names. ``smoothing``: odd window length (1 = none) of the mean
    over neighbouring frames, applied to ``smooth_fields``. ``lookahead``: the
    target is the pad ``lookahead`` frames after the image."""

    kind: str | tuple[str, ...] = TENSORKART
    smoothing: int = 1
    lookahead: int = 0
    smooth_fields: tuple[str, ...] = ("x", "y")
    class_format: Literal["onehot", "index"] = "onehot"

    @property
    def fields(self) -> tuple[str, ...]:
        if self.kind == TENSORKART:
            return TENSORKART_FIELDS
        if self.kind == CLASS3:
            return ("x",)
        if isinstance(self.kind, str):
            return (self.kind,)
        return tuple(self.kind)

    @property
    def size(self) -> int:
        if self.kind == CLASS3:
            return len(STEERING_CLASSES) if self.class_format == "onehot" else 1
        return len(self.fields)

    def check(self, radius: int) -> None:
        """:class:`DatasetError` unless the window fits in a context of ``radius``."""
        unknown = [f for f in (*self.fields, *self.smooth_fields) if f not in PAD_INDEX]
        if unknown:
            raise DatasetError(f"unknown target field(s) {unknown}; pad fields are {PAD_FIELDS}")
        if self.smoothing < 1 or self.smoothing % 2 == 0:
            raise DatasetError(f"smoothing window {self.smoothing} must be an odd number ≥ 1")
        if self.lookahead < 0:
            raise DatasetError(f"lookahead {self.lookahead} must be ≥ 0")
        if self.lookahead + self.smoothing // 2 > radius:
            raise DatasetError(
                f"lookahead {self.lookahead} + half window {self.smoothing // 2} exceeds the "
                f"dataset's context radius {radius}"
            )
        if self.class_format not in ("onehot", "index"):
            raise DatasetError(f"class_format {self.class_format!r} is not 'onehot' or 'index'")


def as_target_config(targets: str | Sequence[str] | TargetConfig) -> TargetConfig:
    if isinstance(targets, TargetConfig):
        return targets
    if isinstance(targets, str):
        return TargetConfig(kind=targets)
    return TargetConfig(kind=tuple(targets))


def effective_pads(context: Any, config: TargetConfig, radius: int) -> Any:
    """``[N, 2R+1, 16]`` context → ``[N, 16]`` pads at t+lookahead, with
    ``smooth_fields`` replaced by their window mean."""
    import tensorflow as tf

    centre = radius + config.lookahead
    pads = context[:, centre]
    if config.smoothing == 1 or not config.smooth_fields:
        return pads
    half = config.smoothing // 2
    mean = tf.reduce_mean(context[:, centre - half : centre + half + 1], axis=1)
    smooth = tf.constant([f in config.smooth_fields for f in PAD_FIELDS])
    return tf.where(smooth[tf.newaxis], mean, pads)


def make_targets(context: Any, config: TargetConfig, radius: int, classes: ClassThresholds) -> Any:
    """The target batch for a context batch."""
    import tensorflow as tf

    pads = effective_pads(context, config, radius)
    if config.kind == CLASS3:
        x = pads[:, PAD_INDEX["x"]]
        index = tf.where(
            x < classes.left_below,
            tf.constant(0, tf.int32),
            tf.where(x > classes.right_above, tf.constant(2, tf.int32), tf.constant(1, tf.int32)),
        )
        if config.class_format == "index":
            return index
        return tf.one_hot(index, len(STEERING_CLASSES), dtype=tf.float32)
    return tf.gather(pads, [PAD_INDEX[f] for f in config.fields], axis=-1)


def mirror_pads(pads: Any) -> Any:
    """Pads (``[..., 16]``) as seen in a horizontally mirrored image: x negated,
    left/right buttons swapped."""
    import tensorflow as tf

    perm = list(range(len(PAD_FIELDS)))
    for a, b in MIRROR_SWAPS:
        perm[PAD_INDEX[a]], perm[PAD_INDEX[b]] = PAD_INDEX[b], PAD_INDEX[a]
    sign = tf.constant([-1.0 if f in MIRROR_NEGATE else 1.0 for f in PAD_FIELDS], pads.dtype)
    return tf.gather(pads, perm, axis=-1) * sign
