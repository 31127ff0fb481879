"""The one place that knows kartkit's record layout.

Everything that reads or writes a pad, a session's files, a stratum or a
``tf.train.Example`` imports its names from here. A change to any of them bumps
``SCHEMA_VERSION`` and the manifest records it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1
SESSION_FORMAT = "kartkit-session"
SESSION_VERSION = 1

# ---------------------------------------------------------------------------
# The N64 pad
# ---------------------------------------------------------------------------

#: Analog stick axes, floats in [-1, 1]. +x is right, +y is UP (the N64
#: convention; the game reads +Y as up). TensorKart stored y unflipped (stick
#: down positive), so its importer negates it.
AXES: tuple[str, ...] = ("x", "y")

#: The 14 digital buttons, in the order of their bits in the core's BUTTONS
#: word (R_DPAD=0x0001 … L_TRIG=0x2000).
BUTTONS: tuple[str, ...] = (
    "dpad_right",
    "dpad_left",
    "dpad_down",
    "dpad_up",
    "start",
    "z",
    "b",
    "a",
    "c_right",
    "c_left",
    "c_down",
    "c_up",
    "r",
    "l",
)

#: The full pad as a flat vector: axes first, then buttons (0.0 / 1.0).
PAD_FIELDS: tuple[str, ...] = AXES + BUTTONS
PAD_SIZE = len(PAD_FIELDS)
PAD_INDEX: dict[str, int] = {name: i for i, name in enumerate(PAD_FIELDS)}

#: The plugin protocol's JSON key for each pad field (REFERENCE.md §2).
PLUGIN_KEYS: dict[str, str] = {
    "dpad_right": "R_DPAD",
    "dpad_left": "L_DPAD",
    "dpad_down": "D_DPAD",
    "dpad_up": "U_DPAD",
    "start": "START_BUTTON",
    "z": "Z_TRIG",
    "b": "B_BUTTON",
    "a": "A_BUTTON",
    "c_right": "R_CBUTTON",
    "c_left": "L_CBUTTON",
    "c_down": "D_CBUTTON",
    "c_up": "U_CBUTTON",
    "r": "R_TRIG",
    "l": "L_TRIG",
    "x": "X_AXIS",
    "y": "Y_AXIS",
}

#: Bit of each button in the core's BUTTONS word.
BUTTON_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(BUTTONS)}

#: Axis magnitude the plugin protocol uses for full deflection.
AXIS_RANGE = 80


class SchemaError(ValueError):
    """A value that does not fit the schema; the message names what and where."""


@dataclass(frozen=True, slots=True)
class Pad:
    """One controller state. Axes in [-1, 1], buttons as bools."""

    x: float = 0.0
    y: float = 0.0
    buttons: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in AXES:
            v = getattr(self, name)
            if not isinstance(v, int | float) or math.isnan(v) or not -1.0 <= v <= 1.0:
                raise SchemaError(f"axis {name}={v!r} is not a number in [-1, 1]")
        unknown = set(self.buttons) - set(BUTTONS)
        if unknown:
            raise SchemaError(f"unknown button(s) {sorted(unknown)}")

    def pressed(self, name: str) -> bool:
        return name in self.buttons

    def to_vector(self) -> list[float]:
        """The pad as ``PAD_FIELDS``-ordered floats."""
        return [float(self.x), float(self.y)] + [1.0 if b in self.buttons else 0.0 for b in BUTTONS]

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> Pad:
        if len(values) != PAD_SIZE:
            raise SchemaError(f"pad vector has {len(values)} values, expected {PAD_SIZE}")
        buttons = frozenset(b for b, v in zip(BUTTONS, values[2:], strict=True) if v >= 0.5)
        return cls(x=float(values[0]), y=float(values[1]), buttons=buttons)

    def to_mapping(self) -> dict[str, float | int]:
        """Field name → value (axes float, buttons 0/1), e.g. for a CSV row."""
        out: dict[str, float | int] = {"x": float(self.x), "y": float(self.y)}
        out.update({b: int(b in self.buttons) for b in BUTTONS})
        return out

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Pad:
        """Inverse of :meth:`to_mapping`; missing buttons are released."""
        buttons = frozenset(b for b in BUTTONS if _truthy(row.get(b, 0), b))
        return cls(
            x=_axis(row.get("x", 0.0), "x"), y=_axis(row.get("y", 0.0), "y"), buttons=buttons
        )


def _axis(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SchemaError(f"axis {name}={value!r} is not a number") from None
    if math.isnan(v) or not -1.0 <= v <= 1.0:
        raise SchemaError(f"axis {name}={value!r} is not a number in [-1, 1]")
    return v


def _truthy(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip()
    if s in ("0", "0.0", "", "False", "false"):
        return False
    if s in ("1", "1.0", "True", "true"):
        return True
    raise SchemaError(f"button {name}={value!r} is not 0 or 1")


# ---------------------------------------------------------------------------
# The native session layout (a recording as kartkit writes it)
# ---------------------------------------------------------------------------

SESSION_FILE = "session.json"
CONTROLS_FILE = "controls.csv"
FRAMES_DIR = "frames"
#: Columns of controls.csv, in order. ``tags`` holds per-frame segment tags
#: separated by ``;`` (e.g. ``recovery``), so that a recorder can mark
#: "recovery from here to here" append-only and crash-safe.
CONTROL_COLUMNS: tuple[str, ...] = ("frame", "t_ns", *PAD_FIELDS, "tags")
TAG_SEPARATOR = ";"
IMAGE_FORMATS = ("png", "jpg")

#: The tag that marks recovery data (CTR-AI mode ``A``, recorder segments,
#: simulator perturbations, learner-driven recordings, human corrections).
RECOVERY_TAG = "recovery"
#: The tag of a frame whose controls are not known (a replay frame whose game
#: time could not be read: intro, countdown, results). Such a frame keeps its
#: place in the recording but never enters a shard: it has no label to learn.
UNLABELLED_TAG = "unlabelled"


def frame_filename(frame: int, image_format: str = "png") -> str:
    """Path of a frame's image, relative to the session directory."""
    return f"{FRAMES_DIR}/{frame:08d}.{image_format}"


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What ``session.json`` holds."""

    game: str = "unknown"
    track: str = "unknown"
    player: str = "unknown"
    width: int = 0
    height: int = 0
    fps: float = 0.0
    created: str = ""
    tags: tuple[str, ...] = ()
    image_format: str = "png"
    #: Free-form provenance and settings (e.g. simulator seed, recorder args).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "game": self.game,
            "track": self.track,
            "player": self.player,
            "capture": {"width": self.width, "height": self.height},
            "fps": self.fps,
            "created": self.created,
            "tags": list(self.tags),
            "image_format": self.image_format,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = SESSION_FILE) -> SessionMeta:
        if not isinstance(obj, dict):
            raise SchemaError(f"{where}: not a JSON object")
        if obj.get("format") != SESSION_FORMAT:
            raise SchemaError(f"{where}: format is {obj.get('format')!r}, not {SESSION_FORMAT!r}")
        version = obj.get("version")
        if not isinstance(version, int) or version > SESSION_VERSION or version < 1:
            raise SchemaError(f"{where}: unsupported session version {version!r}")
        cap = obj.get("capture", {})
        try:
            width, height = int(cap["width"]), int(cap["height"])
            fps = float(obj.get("fps", 0.0))
        except (KeyError, TypeError, ValueError):
            raise SchemaError(f"{where}: capture must hold integer width and height") from None
        if width <= 0 or height <= 0:
            raise SchemaError(f"{where}: capture size {width}x{height} is not positive")
        if math.isnan(fps) or fps < 0:
            raise SchemaError(f"{where}: fps {fps!r} is not a non-negative number")
        image_format = obj.get("image_format", "png")
        if image_format not in IMAGE_FORMATS:
            raise SchemaError(f"{where}: image_format {image_format!r} not in {IMAGE_FORMATS}")
        tags = obj.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SchemaError(f"{where}: tags must be a list of strings")
        extra = obj.get("extra", {})
        if not isinstance(extra, dict):
            raise SchemaError(f"{where}: extra must be an object")
        return cls(
            game=str(obj.get("game", "unknown")),
            track=str(obj.get("track", "unknown")),
            player=str(obj.get("player", "unknown")),
            width=width,
            height=height,
            fps=fps,
            created=str(obj.get("created", "")),
            tags=tuple(tags),
            image_format=image_format,
            extra=extra,
        )


# ---------------------------------------------------------------------------
# Strata: steering class x recovery
# ---------------------------------------------------------------------------

SteeringClass = Literal["left", "straight", "right"]
STEERING_CLASSES: tuple[SteeringClass, ...] = ("left", "straight", "right")


@dataclass(frozen=True, slots=True)
class ClassThresholds:
    """x < left_below → left; x > right_above → right; otherwise straight."""

    left_below: float = -0.15
    right_above: float = 0.15

    def classify(self, x: float) -> SteeringClass:
        if x < self.left_below:
            return "left"
        if x > self.right_above:
            return "right"
        return "straight"

    def to_json(self) -> dict[str, Any]:
        return {"axis": "x", "left_below": self.left_below, "right_above": self.right_above}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ClassThresholds:
        return cls(left_below=float(obj["left_below"]), right_above=float(obj["right_above"]))


def stratum_name(steering: SteeringClass, recovery: bool) -> str:
    """``left``, ``straight``, ``right``, or with ``-recovery`` appended."""
    return f"{steering}-{RECOVERY_TAG}" if recovery else steering


STRATA: tuple[str, ...] = tuple(stratum_name(c, r) for r in (False, True) for c in STEERING_CLASSES)


def parse_stratum(name: str) -> tuple[SteeringClass, bool]:
    if name not in STRATA:
        raise SchemaError(f"unknown stratum {name!r}; expected one of {STRATA}")
    cls, _, rest = name.partition("-")
    return cls, bool(rest)  # type: ignore[return-value]


def is_recovery(tags: Iterable[str]) -> bool:
    return RECOVERY_TAG in tags


# ---------------------------------------------------------------------------
# The tf.train.Example layout of a shard record
# ---------------------------------------------------------------------------

#: Neighbouring pads stored with each record (frames t-R … t+R of the same
#: session, edges replicated) so that temporal smoothing and action lookahead
#: up to R frames can be chosen at load time without re-sharding.
CONTEXT_RADIUS = 5
CONTEXT_LEN = 2 * CONTEXT_RADIUS + 1

FEATURE_IMAGE = "image"  # bytes: JPEG
FEATURE_HEIGHT = "height"  # int64: stored image height
FEATURE_WIDTH = "width"  # int64: stored image width
FEATURE_SESSION = "session"  # bytes: session key (see manifest)
FEATURE_TRACK = "track"  # bytes
FEATURE_FRAME = "frame"  # int64: frame index within the session
FEATURE_T_NS = "t_ns"  # int64: capture timestamp
FEATURE_PAD = "pad"  # float[PAD_SIZE]: this frame's pad
FEATURE_CONTEXT = "context"  # float[CONTEXT_LEN * PAD_SIZE]: pads t-R..t+R, row-major
FEATURE_STRATUM = "stratum"  # bytes: stratum name
FEATURE_TAGS = "tags"  # bytes list


def feature_spec() -> dict[str, Any]:
    """``tf.io.parse_single_example`` spec; imported lazily so that reading a
    session does not pay for TensorFlow."""
    import tensorflow as tf

    return {
        FEATURE_IMAGE: tf.io.FixedLenFeature([], tf.string),
        FEATURE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        FEATURE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        FEATURE_SESSION: tf.io.FixedLenFeature([], tf.string),
        FEATURE_TRACK: tf.io.FixedLenFeature([], tf.string, default_value=b""),
        FEATURE_FRAME: tf.io.FixedLenFeature([], tf.int64),
        FEATURE_T_NS: tf.io.FixedLenFeature([], tf.int64),
        FEATURE_PAD: tf.io.FixedLenFeature([PAD_SIZE], tf.float32),
        FEATURE_CONTEXT: tf.io.FixedLenFeature([CONTEXT_LEN * PAD_SIZE], tf.float32),
        FEATURE_STRATUM: tf.io.FixedLenFeature([], tf.string),
        FEATURE_TAGS: tf.io.VarLenFeature(tf.string),
    }


@dataclass(frozen=True, slots=True)
class FrameExample:
    """One frame as a shard stores it (a ``tf.train.Example``), decoded to
    Python values (image left encoded)."""

    image: bytes
    height: int
    width: int
    session: str
    track: str
    frame: int
    t_ns: int
    pad: tuple[float, ...]
    context: tuple[float, ...]
    stratum: str
    tags: tuple[str, ...] = ()


def encode_example(rec: FrameExample) -> bytes:
    """Serialize a :class:`FrameExample` as a ``tf.train.Example`` (without importing
    TensorFlow: see :mod:`kartdata.tfrecord`)."""
    from kartdata.tfrecord import example_class

    if len(rec.pad) != PAD_SIZE:
        raise SchemaError(f"record pad has {len(rec.pad)} values, expected {PAD_SIZE}")
    if len(rec.context) != CONTEXT_LEN * PAD_SIZE:
        raise SchemaError(f"record context has {len(rec.context)} values")

    ex = example_class()()
    feature = ex.features.feature
    for key, value in (
        (FEATURE_IMAGE, rec.image),
        (FEATURE_SESSION, rec.session.encode()),
        (FEATURE_TRACK, rec.track.encode()),
        (FEATURE_STRATUM, rec.stratum.encode()),
    ):
        feature[key].bytes_list.value.append(value)
    feature[FEATURE_TAGS].bytes_list.value.extend(t.encode() for t in rec.tags)
    for key, number in (
        (FEATURE_HEIGHT, rec.height),
        (FEATURE_WIDTH, rec.width),
        (FEATURE_FRAME, rec.frame),
        (FEATURE_T_NS, rec.t_ns),
    ):
        feature[key].int64_list.value.append(number)
    feature[FEATURE_PAD].float_list.value.extend(rec.pad)
    feature[FEATURE_CONTEXT].float_list.value.extend(rec.context)
    return ex.SerializeToString()


def decode_example(data: bytes) -> FrameExample:
    """Inverse of :func:`encode_example`, in plain Python (for tests and tools)."""
    from kartdata.tfrecord import example_class

    ex = example_class().FromString(data)
    f = ex.features.feature

    def one_b(k: str) -> bytes:
        return f[k].bytes_list.value[0] if f[k].bytes_list.value else b""

    return FrameExample(
        image=one_b(FEATURE_IMAGE),
        height=int(f[FEATURE_HEIGHT].int64_list.value[0]),
        width=int(f[FEATURE_WIDTH].int64_list.value[0]),
        session=one_b(FEATURE_SESSION).decode(),
        track=one_b(FEATURE_TRACK).decode(),
        frame=int(f[FEATURE_FRAME].int64_list.value[0]),
        t_ns=int(f[FEATURE_T_NS].int64_list.value[0]),
        pad=tuple(f[FEATURE_PAD].float_list.value),
        context=tuple(f[FEATURE_CONTEXT].float_list.value),
        stratum=one_b(FEATURE_STRATUM).decode(),
        tags=tuple(v.decode() for v in f[FEATURE_TAGS].bytes_list.value),
    )
