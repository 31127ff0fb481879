"""A :class:`~kartdata.schema.Pad` as the emulator plugin sees it.

Two wire forms, both derived from :mod:`kartdata.schema` (the one place that
knows the names and bits):

- the input-bot protocol's JSON object: 16 integer keys, buttons 0/1, axes
  within ±``AXIS_RANGE``;
- the core's ``BUTTONS`` word: 14 button bits (the two reserved bits 0x4000 and
  0x8000 always 0), X as a signed byte in bits 16-23, Y in bits 24-31.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from kartdata.schema import AXES, AXIS_RANGE, BUTTON_BITS, BUTTONS, PLUGIN_KEYS, Pad, SchemaError

#: The 16 keys in the order the reply lists them (buttons, then axes).
JSON_KEYS: tuple[str, ...] = tuple(PLUGIN_KEYS[name] for name in (*BUTTONS, *AXES))

#: Bits of the BUTTONS word that the core treats as pak-switch buttons.
RESERVED_BITS = 0x4000 | 0x8000

NEUTRAL = Pad()


def axis_to_int(value: float) -> int:
    """A [-1, 1] axis → a protocol integer within ±AXIS_RANGE (rounded, saturated)."""
    if math.isnan(value):
        return 0
    return max(-AXIS_RANGE, min(AXIS_RANGE, round(value * AXIS_RANGE)))


def int_to_axis(value: int) -> float:
    """A protocol integer → a [-1, 1] axis; values beyond ±AXIS_RANGE saturate."""
    return max(-1.0, min(1.0, value / AXIS_RANGE))


def to_json_obj(pad: Pad) -> dict[str, int]:
    """The reply object: every one of the 16 keys, integers only."""
    obj = {PLUGIN_KEYS[b]: int(b in pad.buttons) for b in BUTTONS}
    obj[PLUGIN_KEYS["x"]] = axis_to_int(pad.x)
    obj[PLUGIN_KEYS["y"]] = axis_to_int(pad.y)
    return obj


def to_json_bytes(pad: Pad) -> bytes:
    """The reply body, compact, keys in :data:`JSON_KEYS` order."""
    return json.dumps(to_json_obj(pad), separators=(",", ":")).encode()


def from_json_obj(obj: Mapping[str, Any]) -> Pad:
    """Inverse of :func:`to_json_obj`, as lenient as the plugin: missing keys are
    0, axes saturate at ±AXIS_RANGE, any non-zero button is pressed."""
    if not isinstance(obj, Mapping):
        raise SchemaError(f"pad JSON is a {type(obj).__name__}, not an object")

    def num(key: str) -> int:
        v = obj.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SchemaError(f"pad JSON key {key}={v!r} is not a number")
        return int(v)

    buttons = frozenset(b for b in BUTTONS if num(PLUGIN_KEYS[b]) != 0)
    return Pad(
        x=int_to_axis(num(PLUGIN_KEYS["x"])),
        y=int_to_axis(num(PLUGIN_KEYS["y"])),
        buttons=buttons,
    )


def to_word(pad: Pad) -> int:
    """The core's 32-bit ``BUTTONS`` word (unsigned) for ``pad``."""
    word = 0
    for b in pad.buttons:
        word |= BUTTON_BITS[b]
    word |= (axis_to_int(pad.x) & 0xFF) << 16
    word |= (axis_to_int(pad.y) & 0xFF) << 24
    return word


def json_obj_to_word(obj: Mapping[str, Any]) -> int:
    """The word the plugin builds from a reply object (same leniency as the C parser)."""
    return to_word(from_json_obj(obj))


def from_word(word: int) -> Pad:
    """Inverse of :func:`to_word`; raises if a reserved bit is set."""
    word &= 0xFFFFFFFF
    if word & RESERVED_BITS:
        raise SchemaError(f"BUTTONS word {word:#010x} sets reserved bits {RESERVED_BITS:#06x}")
    buttons = frozenset(b for b in BUTTONS if word & BUTTON_BITS[b])
    return Pad(
        x=int_to_axis(_signed8(word >> 16)), y=int_to_axis(_signed8(word >> 24)), buttons=buttons
    )


def word_axes(word: int) -> tuple[int, int]:
    """(X, Y) as the signed protocol integers stored in a BUTTONS word."""
    return _signed8(word >> 16), _signed8(word >> 24)


def _signed8(v: int) -> int:
    v &= 0xFF
    return v - 256 if v >= 128 else v
