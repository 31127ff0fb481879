"""The key map: X key names for the N64 stick, buttons and hotkeys.

One file shape serves both directions: the recorder's keyboard reader
(:mod:`kartdata.devices.keyboard`) reads a human's keys through it, and the
virtual keyboard (:mod:`kartdata.devices.virtual_keyboard`) presses keys
through it for a policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kartdata.devices.controls import HOTKEYS, InputError, load_json
from kartdata.schema import BUTTONS

#: The stick directions a key map names.
STICK_DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")


@dataclass(frozen=True, slots=True)
class KeyMap:
    """X keysym names (as ``xev``/``xdotool`` spell them) → stick, buttons, hotkeys.

    The stick goes to full deflection while a direction key is held; with
    ``ramp_s`` > 0 the keyboard reader moves it there over that many seconds
    instead, which gives steering values between the extremes (a model trained
    on only -1/0/+1 steers jerkily).
    """

    left: str = "Left"
    right: str = "Right"
    up: str = "Up"
    down: str = "Down"
    ramp_s: float = 0.0
    buttons: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "a": ("a",),
            "b": ("s",),
            "z": ("d",),
            "r": ("space",),
            "l": ("q",),
            "start": ("Return",),
            "c_up": ("i",),
            "c_down": ("k",),
            "c_left": ("j",),
            "c_right": ("l",),
            "dpad_up": ("t",),
            "dpad_down": ("g",),
            "dpad_left": ("f",),
            "dpad_right": ("h",),
        }
    )
    hotkeys: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "record": ("F5",),
            "pause": ("F6",),
            "recovery": ("F7",),
            "discard": ("F8",),
            "quit": ("F10",),
        }
    )
    #: Where it came from, for error messages (the file, or "key map").
    source: str = field(default="key map", compare=False)

    @property
    def stick(self) -> dict[str, str]:
        """Direction → key name."""
        return {"left": self.left, "right": self.right, "up": self.up, "down": self.down}

    def key_names(self) -> set[str]:
        """Every key name the map uses."""
        names = set(self.stick.values())
        for ks in (*self.buttons.values(), *self.hotkeys.values()):
            names.update(ks)
        return names

    def to_json(self) -> dict[str, Any]:
        return {
            "stick": self.stick,
            "ramp_s": self.ramp_s,
            "buttons": {k: list(v) for k, v in self.buttons.items()},
            "hotkeys": {k: list(v) for k, v in self.hotkeys.items()},
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "keymap") -> KeyMap:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: not a JSON object")
        unknown = set(obj) - {"stick", "ramp_s", "buttons", "hotkeys"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
        base = cls()
        stick = obj.get("stick", {})
        if not isinstance(stick, dict) or set(stick) - set(STICK_DIRECTIONS):
            raise InputError(f"{where}: 'stick' maps left/right/up/down to key names")
        if not all(isinstance(v, str) and v for v in stick.values()):
            raise InputError(f"{where}: 'stick' values must be key names")
        try:
            ramp = float(obj.get("ramp_s", base.ramp_s))
        except (TypeError, ValueError):
            raise InputError(f"{where}: ramp_s is not a number") from None
        if ramp < 0:
            raise InputError(f"{where}: ramp_s {ramp} is negative")
        return cls(
            left=stick.get("left", base.left),
            right=stick.get("right", base.right),
            up=stick.get("up", base.up),
            down=stick.get("down", base.down),
            ramp_s=ramp,
            buttons=_keys(obj, "buttons", BUTTONS, base.buttons, where),
            hotkeys=_keys(obj, "hotkeys", HOTKEYS, base.hotkeys, where),
            source=where,
        )

    @classmethod
    def load(cls, path: str | Path) -> KeyMap:
        return cls.from_json(load_json(path), str(path))


def _keys(
    obj: dict[str, Any],
    section: str,
    names: Iterable[str],
    default: Mapping[str, tuple[str, ...]],
    where: str,
) -> dict[str, tuple[str, ...]]:
    """A section of a key map file. Absent: the default; present: replaces it wholly."""
    sec = obj.get(section)
    if sec is None:
        return dict(default)
    if not isinstance(sec, dict):
        raise InputError(f"{where}: {section} must be an object of name → key names")
    allowed = set(names)
    out: dict[str, tuple[str, ...]] = {}
    for name, ks in sec.items():
        if name not in allowed:
            raise InputError(
                f"{where}: {section}: unknown name {name!r}; expected one of {sorted(allowed)}"
            )
        ks = [ks] if isinstance(ks, str) else ks
        if not isinstance(ks, list) or not all(isinstance(k, str) and k for k in ks):
            raise InputError(f"{where}: {section}.{name}: a key name or a list of them")
        out[name] = tuple(ks)
    return out
