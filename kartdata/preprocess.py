"""THE image preprocessing, shared by training (kartdata.load) and play
(kartplay's policy). An exported model records its :class:`InputSpec`, so the
play side cannot preprocess differently from how the model was trained."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Bumped whenever :func:`preprocess` changes what it computes.
PREPROCESS_VERSION = 1


@dataclass(frozen=True, slots=True)
class InputSpec:
    """Model input: crop fractions of the source image, then resize to
    ``height`` x ``width``, RGB scaled to [0, 1]."""

    height: int = 66
    width: int = 200
    crop_top: float = 0.0
    crop_bottom: float = 0.0
    version: int = PREPROCESS_VERSION

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"input size {self.height}x{self.width} is not positive")
        if not (0 <= self.crop_top < 1 and 0 <= self.crop_bottom < 1) or (
            self.crop_top + self.crop_bottom >= 1
        ):
            raise ValueError(f"crop fractions {self.crop_top}, {self.crop_bottom} leave no image")
        if self.version != PREPROCESS_VERSION:
            raise ValueError(
                f"preprocessing version {self.version} is not this kartkit's "
                f"({PREPROCESS_VERSION}); re-export the model with a matching kartkit"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InputSpec:
        return cls(**{k: obj[k] for k in ("height", "width", "crop_top", "crop_bottom", "version")})


#: TensorKart's PilotNet input and CTR-AI's input.
PILOTNET_INPUT = InputSpec(66, 200)
CTR_INPUT = InputSpec(90, 160)


def preprocess(image: Any, spec: InputSpec) -> Any:
    """uint8 RGB image(s) ``(H, W, 3)`` or ``(N, H, W, 3)`` → float32 in [0, 1]
    of ``spec.shape`` (with the batch dimension kept). Works eagerly on numpy
    arrays and inside ``tf.data`` graphs."""
    import tensorflow as tf

    x = tf.convert_to_tensor(image)
    batched = x.shape.rank == 4
    if not batched:
        x = x[tf.newaxis]
    h = tf.shape(x)[1]
    top = tf.cast(tf.math.floor(tf.cast(h, tf.float32) * spec.crop_top), tf.int32)
    bottom = h - tf.cast(tf.math.floor(tf.cast(h, tf.float32) * spec.crop_bottom), tf.int32)
    x = x[:, top:bottom]
    # Area averaging: alias-free when shrinking (all kartkit ever does) and
    # ~2.5x cheaper than antialiased bilinear, which kept the loader from
    # feeding training at decode speed. It takes uint8 as is and averages in
    # float32, so casting first would only add a full-size float copy (more
    # than half the cost) for bit-identical output.
    x = tf.image.resize(x, (spec.height, spec.width), method="area")
    x = tf.clip_by_value(x / 255.0, 0.0, 1.0)
    x = tf.ensure_shape(x, (None, *spec.shape))
    return x if batched else x[0]
