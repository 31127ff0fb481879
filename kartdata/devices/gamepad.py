"""A gamepad → an N64 pad, read through SDL's GameController API (pygame-ce).

SDL's controller database (:mod:`kartdata.devices.sdl`) knows hundreds of pads
by GUID and maps each to one standard layout: buttons ``a b x y back guide start
leftstick rightstick leftshoulder rightshoulder dpup dpdown dpleft dpright``,
axes ``leftx lefty rightx righty lefttrigger righttrigger``. A :class:`PadMapping`
turns that layout into the N64 pad and the recorder's hotkeys, so any pad SDL
knows works without configuration.

A mapping file overrides either level (docs/devices.md):

- a binding with a number instead of a name (``{"button": 3}``, ``{"axis": 2}``,
  ``{"hat": 0, "direction": "up"}``) reads that raw joystick element, for pads
  SDL does not know or a layout of one's own;
- ``"sdl": "a:b1,b:b0,…"`` replaces SDL's database entry for the opened pad.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from kartdata.devices import sdl
from kartdata.devices.controls import HOTKEYS, Controls, InputError, load_json
from kartdata.schema import BUTTONS, Pad

#: SDL's GameController buttons and axes, as its mapping strings name them, in
#: the order of SDL's ``SDL_GameControllerButton`` / ``SDL_GameControllerAxis``.
CONTROLLER_BUTTONS: tuple[str, ...] = (
    "a", "b", "x", "y", "back", "guide", "start", "leftstick", "rightstick",
    "leftshoulder", "rightshoulder", "dpup", "dpdown", "dpleft", "dpright",
    "misc1", "paddle1", "paddle2", "paddle3", "paddle4", "touchpad",
)  # fmt: skip
CONTROLLER_AXES: tuple[str, ...] = (
    "leftx", "lefty", "rightx", "righty", "lefttrigger", "righttrigger",
)  # fmt: skip

HatDirection = Literal["up", "down", "left", "right"]
_HAT_VECTORS: dict[str, tuple[int, int]] = {
    "up": (0, 1),
    "down": (0, -1),
    "left": (-1, 0),
    "right": (1, 0),
}


class PadState(Protocol):
    """One instant of a pad: the SDL controller layout by name, the raw
    joystick by index. Missing elements read as released / centred."""

    def button(self, name: str | int) -> bool: ...

    def axis(self, name: str | int) -> float: ...

    def hat(self, index: int) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class Binding:
    """One physical control that presses a pad button or a hotkey.

    ``button``: pressed while held. ``axis``: pressed while the axis is past
    ``threshold`` (negative threshold: below it), for triggers and for the
    right stick as C buttons. ``hat``: pressed while the raw hat points
    ``direction``. ``control``: an SDL controller name, or a raw index.
    """

    kind: Literal["button", "axis", "hat"]
    control: str | int
    threshold: float = 0.5
    direction: HatDirection | None = None

    @property
    def raw(self) -> bool:
        return isinstance(self.control, int)

    def active(self, s: PadState) -> bool:
        if self.kind == "button":
            return s.button(self.control)
        if self.kind == "axis":
            v = s.axis(self.control)
            return v >= self.threshold if self.threshold >= 0 else v <= self.threshold
        assert isinstance(self.control, int)
        hx, hy = s.hat(self.control)
        dx, dy = _HAT_VECTORS[self.direction or "up"]
        return (dx != 0 and hx == dx) or (dy != 0 and hy == dy)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "button":
            return {"button": self.control}
        if self.kind == "axis":
            return {"axis": self.control, "threshold": self.threshold}
        return {"hat": self.control, "direction": self.direction}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Binding:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: a binding must be an object like {{'button': 'a'}}")
        try:
            if "button" in obj:
                return cls("button", _control(obj["button"], CONTROLLER_BUTTONS, where))
            if "axis" in obj:
                t = float(obj.get("threshold", 0.5))
                if not -1.0 <= t <= 1.0 or t == 0:
                    raise InputError(f"{where}: threshold {t} must be in [-1, 1] and not 0")
                return cls("axis", _control(obj["axis"], CONTROLLER_AXES, where), threshold=t)
            if "hat" in obj:
                d = obj.get("direction")
                if d not in _HAT_VECTORS:
                    raise InputError(f"{where}: hat direction {d!r} not in {list(_HAT_VECTORS)}")
                return cls("hat", _index(obj["hat"], where), direction=d)
        except (TypeError, ValueError):
            raise InputError(f"{where}: bad binding {obj!r}") from None
        raise InputError(f"{where}: binding {obj!r} names no 'button', 'axis' or 'hat'")


def _index(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"{where}: index {v!r} is not a non-negative integer")
    return v


def _control(v: Any, names: tuple[str, ...], where: str) -> str | int:
    if isinstance(v, str):
        if v not in names:
            raise InputError(f"{where}: {v!r} is not an SDL controller name; one of {list(names)}")
        return v
    return _index(v, where)


def _b(*names: str) -> tuple[Binding, ...]:
    return tuple(Binding("button", n) for n in names)


@dataclass(frozen=True, slots=True)
class PadMapping:
    """SDL controller layout (or raw joystick) → N64 pad and hotkeys.

    The stick: ``x_axis``/``y_axis`` with a deadzone (values inside it read 0,
    the rest is rescaled so full deflection stays ±1). SDL reports stick-down as
    positive, the N64 wants up positive, hence ``y_invert``. ``sdl``: an SDL
    mapping (``a:b0,b:b1,…``) that replaces the database's entry for the pad.
    """

    x_axis: str | int = "leftx"
    y_axis: str | int = "lefty"
    x_invert: bool = False
    y_invert: bool = True
    deadzone: float = 0.1
    buttons: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)
    hotkeys: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)
    sdl: str | None = None

    def bindings(self) -> Iterable[Binding]:
        for binds in (*self.buttons.values(), *self.hotkeys.values()):
            yield from binds

    @property
    def needs_controller(self) -> bool:
        """Whether it names SDL controller elements (so the pad must be one SDL maps)."""
        return not (
            isinstance(self.x_axis, int)
            and isinstance(self.y_axis, int)
            and all(b.raw for b in self.bindings())
        )

    def controls(self, s: PadState) -> Controls:
        x = _deadzone(s.axis(self.x_axis), self.deadzone)
        y = _deadzone(s.axis(self.y_axis), self.deadzone)
        pressed = frozenset(
            b for b, binds in self.buttons.items() if any(k.active(s) for k in binds)
        )
        hot = frozenset(h for h, binds in self.hotkeys.items() if any(k.active(s) for k in binds))
        return Controls(
            Pad(x=-x if self.x_invert else x, y=-y if self.y_invert else y, buttons=pressed), hot
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stick": {
                "x": {"axis": self.x_axis, "invert": self.x_invert},
                "y": {"axis": self.y_axis, "invert": self.y_invert},
                "deadzone": self.deadzone,
            },
            "buttons": {k: [b.to_json() for b in v] for k, v in self.buttons.items()},
            "hotkeys": {k: [b.to_json() for b in v] for k, v in self.hotkeys.items()},
        }
        if self.sdl is not None:
            out["sdl"] = self.sdl
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "mapping") -> PadMapping:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: not a JSON object")
        unknown = set(obj) - {"stick", "buttons", "hotkeys", "sdl"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
        base = DEFAULT_PAD_MAPPING
        stick = obj.get("stick", {})
        if not isinstance(stick, dict):
            raise InputError(f"{where}: 'stick' must be an object")
        sx, sy = stick.get("x", {}), stick.get("y", {})
        try:
            dz = float(stick.get("deadzone", base.deadzone))
            x_axis = _control(sx.get("axis", base.x_axis), CONTROLLER_AXES, f"{where}: stick.x")
            y_axis = _control(sy.get("axis", base.y_axis), CONTROLLER_AXES, f"{where}: stick.y")
            x_inv = bool(sx.get("invert", base.x_invert))
            y_inv = bool(sy.get("invert", base.y_invert))
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{where}: 'stick' holds x/y objects and a deadzone number") from None
        if not 0.0 <= dz < 1.0:
            raise InputError(f"{where}: deadzone {dz} is not in [0, 1)")
        sdl_map = obj.get("sdl")
        if sdl_map is not None and (not isinstance(sdl_map, str) or ":" not in sdl_map):
            raise InputError(f"{where}: 'sdl' must be an SDL mapping string like 'a:b0,b:b1'")
        return cls(
            x_axis=x_axis,
            y_axis=y_axis,
            x_invert=x_inv,
            y_invert=y_inv,
            deadzone=dz,
            buttons=_bindings(obj.get("buttons"), BUTTONS, base.buttons, f"{where}: buttons"),
            hotkeys=_bindings(obj.get("hotkeys"), HOTKEYS, base.hotkeys, f"{where}: hotkeys"),
            sdl=sdl_map,
        )

    @classmethod
    def load(cls, path: str | Path) -> PadMapping:
        return cls.from_json(load_json(path), str(path))


def _bindings(
    obj: Any, names: Iterable[str], default: Mapping[str, tuple[Binding, ...]], where: str
) -> dict[str, tuple[Binding, ...]]:
    """A section of a mapping file. Absent: the default; present: replaces the
    default wholly (so a binding can be removed)."""
    if obj is None:
        return dict(default)
    if not isinstance(obj, dict):
        raise InputError(f"{where}: must be an object of name → list of bindings")
    allowed = set(names)
    out: dict[str, tuple[Binding, ...]] = {}
    for name, binds in obj.items():
        if name not in allowed:
            raise InputError(f"{where}: unknown name {name!r}; expected one of {sorted(allowed)}")
        if isinstance(binds, dict):
            binds = [binds]
        if not isinstance(binds, list):
            raise InputError(f"{where}.{name}: must be a binding or a list of bindings")
        out[name] = tuple(Binding.from_json(b, f"{where}.{name}") for b in binds)
    return out


#: Sticks rarely report exactly ±1 (SDL's +32767 is 0.99997); past this they count as full.
_OUTER = 0.99


def _deadzone(v: float, dz: float) -> float:
    if abs(v) <= dz:
        return 0.0
    s = (abs(v) - dz) / (_OUTER - dz)
    return min(1.0, s) if v > 0 else -min(1.0, s)


#: Mario Kart 64 on SDL's standard layout: A accelerates, B (or X) brakes, the
#: left trigger is Z (items), the right shoulder or trigger is R (hop/drift),
#: the right stick is the C buttons.
DEFAULT_PAD_MAPPING = PadMapping(
    buttons={
        "a": _b("a"),
        "b": _b("x", "b"),
        "z": (Binding("axis", "lefttrigger", 0.5),),
        "r": (*_b("rightshoulder"), Binding("axis", "righttrigger", 0.5)),
        "l": _b("leftshoulder"),
        "start": _b("start"),
        "c_up": (Binding("axis", "righty", -0.5),),
        "c_down": (Binding("axis", "righty", 0.5),),
        "c_left": (Binding("axis", "rightx", -0.5),),
        "c_right": (Binding("axis", "rightx", 0.5),),
        "dpad_up": _b("dpup"),
        "dpad_down": _b("dpdown"),
        "dpad_left": _b("dpleft"),
        "dpad_right": _b("dpright"),
    },
    # no quit on the pad by default: one stray press would end a take (Ctrl-C
    # or the keyboard's quit key end a recording)
    hotkeys={
        "record": _b("guide"),
        "recovery": _b("back"),
        "pause": _b("leftstick"),
        "discard": _b("rightstick"),
    },
)

_AXIS_SCALE = 32767.0


class _SdlPadState:
    """A :class:`PadState` over an open SDL joystick and, where SDL maps the
    pad, its GameController."""

    def __init__(self, joystick: Any, controller: Any | None) -> None:
        self.js = joystick
        self.ctl = controller

    def button(self, name: str | int) -> bool:
        if isinstance(name, int):
            return name < self.js.get_numbuttons() and bool(self.js.get_button(name))
        # SDL_GameControllerButton numbers the buttons in CONTROLLER_BUTTONS' order
        return self.ctl is not None and bool(self.ctl.get_button(CONTROLLER_BUTTONS.index(name)))

    def axis(self, name: str | int) -> float:
        if isinstance(name, int):
            if name >= self.js.get_numaxes():
                return 0.0
            return min(1.0, max(-1.0, float(self.js.get_axis(name))))
        if self.ctl is None:
            return 0.0
        v = self.ctl.get_axis(CONTROLLER_AXES.index(name)) / _AXIS_SCALE
        return min(1.0, max(-1.0, v))

    def hat(self, index: int) -> tuple[int, int]:
        if index >= self.js.get_numhats():
            return (0, 0)
        x, y = self.js.get_hat(index)
        return (int(x), int(y))


class Gamepad:
    """An SDL pad read through a :class:`PadMapping`: by SDL's controller layout
    where SDL knows the pad, by raw joystick elements where the mapping says so."""

    def __init__(self, index: int = 0, mapping: PadMapping | None = None) -> None:
        sdl.init()
        import pygame
        from pygame._sdl2 import controller

        sdl.pump()
        count = pygame.joystick.get_count()
        if not 0 <= index < count:
            raise InputError(f"no gamepad {index}: SDL sees {count} joystick(s)")
        self.index = index
        self.mapping = mapping or DEFAULT_PAD_MAPPING
        self.joystick = pygame.joystick.Joystick(index)
        self.name: str = self.joystick.get_name()
        self.guid: str = self.joystick.get_guid()
        if self.mapping.sdl is not None:
            sdl.add_mapping(self.guid, self.name, self.mapping.sdl)
        self.controller: Any | None = None
        if controller.is_controller(index):
            self.controller = controller.Controller(index)
        elif self.mapping.needs_controller:
            self.joystick.quit()
            raise InputError(
                f"gamepad {index} ({self.name!r}, GUID {self.guid}) is not in SDL's controller "
                "database: give a mapping file with raw button/axis numbers or an 'sdl' "
                "mapping (docs/devices.md)"
            )
        self._state = _SdlPadState(self.joystick, self.controller)

    @property
    def sdl_mapping(self) -> dict[str, str] | None:
        """SDL's mapping of this pad (``{'a': 'b0', …}``), None where it has none."""
        return None if self.controller is None else sdl.mapping_for(self.guid)

    def state(self) -> PadState:
        sdl.pump()
        return self._state

    def read(self) -> Controls:
        return self.mapping.controls(self.state())

    def button(self, name: str | int) -> bool:
        """One button now, e.g. the manual-override button: an SDL controller
        name (``"back"``) or a raw joystick button number."""
        return self.state().button(name)

    def close(self) -> None:
        if self.controller is not None:
            self.controller.quit()
        self.joystick.quit()
