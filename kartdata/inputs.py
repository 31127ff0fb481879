"""Human input for recording and manual override: a gamepad or the keyboard → an N64 pad.

Both sources answer ``read() -> Controls``: the pad the human holds now, plus the
hotkeys held now (``record``, ``pause``, ``recovery``, ``discard``, ``quit``).

Gamepad: pygame-ce's SDL joystick API. A :class:`PadMapping` turns raw axes,
buttons and hats into the N64 pad; the default follows SDL's layout of an
Xbox-style pad on Linux and can be replaced by a JSON mapping file (README,
"Recording"). The mapping reads any object with the :class:`JoystickState`
methods, which a ``pygame.joystick.Joystick`` has.

Keyboard: the X server's global key state (``XQueryKeymap`` through
python-xlib), so keys are seen whatever window has the focus — the game's
window, normally — and real X key events (``xdotool keydown``) drive it in tests.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from kartdata.errors import KartError
from kartdata.schema import BUTTONS, Pad

#: Hotkey actions the recorder understands.
HOTKEYS: tuple[str, ...] = ("record", "pause", "recovery", "discard", "quit")


class InputError(KartError):
    """No such gamepad, no keyboard, or a bad mapping file."""


@dataclass(frozen=True, slots=True)
class Controls:
    """What a human holds at one instant."""

    pad: Pad = field(default_factory=Pad)
    hotkeys: frozenset[str] = frozenset()


class InputSource(Protocol):
    def read(self) -> Controls: ...

    def close(self) -> None: ...


class HotkeyEdges:
    """Turns held hotkeys into presses: each press counts once however long it is held."""

    def __init__(self) -> None:
        self._held: frozenset[str] = frozenset()

    def update(self, held: frozenset[str]) -> frozenset[str]:
        pressed = held - self._held
        self._held = held
        return pressed


# ---------------------------------------------------------------------------
# Gamepad
# ---------------------------------------------------------------------------


class JoystickState(Protocol):
    """The part of ``pygame.joystick.Joystick`` the mapping reads."""

    def get_numaxes(self) -> int: ...

    def get_numbuttons(self) -> int: ...

    def get_numhats(self) -> int: ...

    def get_axis(self, index: int, /) -> float: ...

    def get_button(self, index: int, /) -> bool: ...

    def get_hat(self, index: int, /) -> tuple[int, int]: ...


HatDirection = Literal["up", "down", "left", "right"]
_HAT_VECTORS: dict[str, tuple[int, int]] = {
    "up": (0, 1),
    "down": (0, -1),
    "left": (-1, 0),
    "right": (1, 0),
}


@dataclass(frozen=True, slots=True)
class Binding:
    """One physical control that presses a pad button or a hotkey.

    ``button``: pressed while held. ``axis``: pressed while the axis is past
    ``threshold`` (negative threshold: below it), for triggers and for the
    right stick as C buttons. ``hat``: pressed while the hat points ``direction``.
    """

    kind: Literal["button", "axis", "hat"]
    index: int
    threshold: float = 0.5
    direction: HatDirection | None = None

    def active(self, js: JoystickState) -> bool:
        if self.kind == "button":
            return self.index < js.get_numbuttons() and bool(js.get_button(self.index))
        if self.kind == "axis":
            if self.index >= js.get_numaxes():
                return False
            v = js.get_axis(self.index)
            return v >= self.threshold if self.threshold >= 0 else v <= self.threshold
        if self.index >= js.get_numhats():
            return False
        hx, hy = js.get_hat(self.index)
        dx, dy = _HAT_VECTORS[self.direction or "up"]
        return (dx != 0 and hx == dx) or (dy != 0 and hy == dy)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "button":
            return {"button": self.index}
        if self.kind == "axis":
            return {"axis": self.index, "threshold": self.threshold}
        return {"hat": self.index, "direction": self.direction}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Binding:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: a binding must be an object like {{'button': 0}}")
        try:
            if "button" in obj:
                return cls("button", _index(obj["button"], where))
            if "axis" in obj:
                t = float(obj.get("threshold", 0.5))
                if not -1.0 <= t <= 1.0 or t == 0:
                    raise InputError(f"{where}: threshold {t} must be in [-1, 1] and not 0")
                return cls("axis", _index(obj["axis"], where), threshold=t)
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


def _b(i: int) -> tuple[Binding, ...]:
    return (Binding("button", i),)


@dataclass(frozen=True, slots=True)
class PadMapping:
    """Raw joystick → N64 pad and hotkeys.

    The stick: ``x_axis``/``y_axis`` with a deadzone (values inside it read 0,
    the rest is rescaled so full deflection stays ±1). SDL reports stick-down as
    positive, the N64 wants up positive, hence ``y_invert``.
    """

    x_axis: int = 0
    y_axis: int = 1
    x_invert: bool = False
    y_invert: bool = True
    deadzone: float = 0.1
    buttons: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)
    hotkeys: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)

    def controls(self, js: JoystickState) -> Controls:
        x = _deadzone(self._axis(js, self.x_axis), self.deadzone)
        y = _deadzone(self._axis(js, self.y_axis), self.deadzone)
        pressed = frozenset(
            b for b, binds in self.buttons.items() if any(k.active(js) for k in binds)
        )
        hot = frozenset(h for h, binds in self.hotkeys.items() if any(k.active(js) for k in binds))
        return Controls(
            Pad(x=-x if self.x_invert else x, y=-y if self.y_invert else y, buttons=pressed), hot
        )

    @staticmethod
    def _axis(js: JoystickState, i: int) -> float:
        if i >= js.get_numaxes():
            return 0.0
        return min(1.0, max(-1.0, float(js.get_axis(i))))

    def to_json(self) -> dict[str, Any]:
        return {
            "stick": {
                "x": {"axis": self.x_axis, "invert": self.x_invert},
                "y": {"axis": self.y_axis, "invert": self.y_invert},
                "deadzone": self.deadzone,
            },
            "buttons": {k: [b.to_json() for b in v] for k, v in self.buttons.items()},
            "hotkeys": {k: [b.to_json() for b in v] for k, v in self.hotkeys.items()},
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "mapping") -> PadMapping:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: not a JSON object")
        unknown = set(obj) - {"stick", "buttons", "hotkeys"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
        base = DEFAULT_PAD_MAPPING
        stick = obj.get("stick", {})
        if not isinstance(stick, dict):
            raise InputError(f"{where}: 'stick' must be an object")
        sx, sy = stick.get("x", {}), stick.get("y", {})
        try:
            dz = float(stick.get("deadzone", base.deadzone))
            x_axis = _index(sx.get("axis", base.x_axis), f"{where}: stick.x")
            y_axis = _index(sy.get("axis", base.y_axis), f"{where}: stick.y")
            x_inv = bool(sx.get("invert", base.x_invert))
            y_inv = bool(sy.get("invert", base.y_invert))
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{where}: 'stick' holds x/y objects and a deadzone number") from None
        if not 0.0 <= dz < 1.0:
            raise InputError(f"{where}: deadzone {dz} is not in [0, 1)")
        return cls(
            x_axis=x_axis,
            y_axis=y_axis,
            x_invert=x_inv,
            y_invert=y_inv,
            deadzone=dz,
            buttons=_bindings(obj.get("buttons"), BUTTONS, base.buttons, f"{where}: buttons"),
            hotkeys=_bindings(obj.get("hotkeys"), HOTKEYS, base.hotkeys, f"{where}: hotkeys"),
        )

    @classmethod
    def load(cls, path: str | Path) -> PadMapping:
        return cls.from_json(_load_json(path), str(path))


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


#: SDL's joystick layout of an Xbox-style pad on Linux: axes 0/1 left stick,
#: 2 left trigger, 3/4 right stick, 5 right trigger; buttons 0 A, 1 B, 2 X,
#: 3 Y, 4 LB, 5 RB, 6 Back, 7 Start, 8 Guide, 9/10 stick clicks; hat 0 d-pad.
#: Mario Kart 64: A accelerates, B brakes, Z (left trigger) uses the item,
#: R (RB or right trigger) hops/drifts.
DEFAULT_PAD_MAPPING = PadMapping(
    buttons={
        "a": _b(0),
        "b": _b(2) + _b(1),
        "z": (Binding("axis", 2, 0.5),),
        "r": (*_b(5), Binding("axis", 5, 0.5)),
        "l": _b(4),
        "start": _b(7),
        "c_up": (Binding("axis", 4, -0.5),),
        "c_down": (Binding("axis", 4, 0.5),),
        "c_left": (Binding("axis", 3, -0.5),),
        "c_right": (Binding("axis", 3, 0.5),),
        "dpad_up": (Binding("hat", 0, direction="up"),),
        "dpad_down": (Binding("hat", 0, direction="down"),),
        "dpad_left": (Binding("hat", 0, direction="left"),),
        "dpad_right": (Binding("hat", 0, direction="right"),),
    },
    # no quit on the pad by default: one stray press would end a take (Ctrl-C
    # or the keyboard's quit key end a recording)
    hotkeys={"record": _b(8), "recovery": _b(6), "pause": _b(9), "discard": _b(10)},
)

_sdl_lock = threading.Lock()


def init_sdl_joysticks() -> None:
    """Start SDL's joystick subsystem without a window (dummy video driver when
    no other is chosen) and let it read pads while another window has focus."""
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    with _sdl_lock:
        import pygame

        if not pygame.display.get_init():
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            pygame.display.init()
        if not pygame.joystick.get_init():
            pygame.joystick.init()


def pump() -> None:
    """Let SDL update joystick state (device events and axis/button changes)."""
    import pygame

    pygame.event.pump()


class Gamepad:
    """A pygame/SDL joystick read through a :class:`PadMapping`."""

    def __init__(self, index: int = 0, mapping: PadMapping | None = None) -> None:
        init_sdl_joysticks()
        import pygame

        pump()
        count = pygame.joystick.get_count()
        if not 0 <= index < count:
            raise InputError(f"no gamepad {index}: SDL sees {count} joystick(s)")
        self.index = index
        self.mapping = mapping or DEFAULT_PAD_MAPPING
        self.joystick = pygame.joystick.Joystick(index)
        self.name = self.joystick.get_name()

    def state(self) -> JoystickState:
        pump()
        return self.joystick

    def read(self) -> Controls:
        return self.mapping.controls(self.state())

    def button(self, index: int) -> bool:
        """A raw button, e.g. the manual-override button."""
        js = self.state()
        return index < js.get_numbuttons() and bool(js.get_button(index))

    def close(self) -> None:
        self.joystick.quit()


class VirtualPad:
    """An SDL virtual joystick (``SDL_JoystickAttachVirtual``) in the Xbox layout
    of :data:`DEFAULT_PAD_MAPPING`: a real SDL device that :class:`Gamepad`
    opens like a physical pad, for tests and demos without hardware. It calls
    the SDL library that pygame-ce itself loaded, so both see one device list.
    """

    AXES, BUTTONS, HATS = 6, 11, 1
    _HAT_BITS: ClassVar[dict[tuple[int, int], int]] = {
        (0, 0): 0,
        (0, 1): 1,
        (1, 0): 2,
        (0, -1): 4,
        (-1, 0): 8,
    }

    def __init__(self) -> None:
        import ctypes

        init_sdl_joysticks()
        self._sdl = _sdl_library()
        c = ctypes
        self._sdl.SDL_JoystickAttachVirtual.restype = c.c_int
        self._sdl.SDL_JoystickAttachVirtual.argtypes = [c.c_int, c.c_int, c.c_int, c.c_int]
        self._sdl.SDL_JoystickFromInstanceID.restype = c.c_void_p
        self._sdl.SDL_JoystickFromInstanceID.argtypes = [c.c_int32]
        self._sdl.SDL_JoystickSetVirtualAxis.argtypes = [c.c_void_p, c.c_int, c.c_int16]
        self._sdl.SDL_JoystickSetVirtualButton.argtypes = [c.c_void_p, c.c_int, c.c_uint8]
        self._sdl.SDL_JoystickSetVirtualHat.argtypes = [c.c_void_p, c.c_int, c.c_uint8]
        self._sdl.SDL_JoystickDetachVirtual.argtypes = [c.c_int]
        # SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
        self.index = self._sdl.SDL_JoystickAttachVirtual(1, self.AXES, self.BUTTONS, self.HATS)
        if self.index < 0:
            raise InputError("SDL could not attach a virtual joystick")
        import pygame

        pump()
        self._js = pygame.joystick.Joystick(self.index)
        self._ptr = self._sdl.SDL_JoystickFromInstanceID(self._js.get_instance_id())
        # rest like an Xbox pad on Linux: sticks centred, triggers (2, 5) released at -1
        for axis in range(self.AXES):
            self.set_axis(axis, -1.0 if axis in (2, 5) else 0.0)

    def set_axis(self, axis: int, value: float) -> None:
        v = max(-1.0, min(1.0, value))
        raw = round(v * 32768) if v < 0 else round(v * 32767)  # SDL axes are int16
        self._sdl.SDL_JoystickSetVirtualAxis(self._ptr, axis, raw)

    def set_button(self, button: int, pressed: bool) -> None:
        self._sdl.SDL_JoystickSetVirtualButton(self._ptr, button, int(pressed))

    def set_hat(self, hat: int, value: tuple[int, int]) -> None:
        self._sdl.SDL_JoystickSetVirtualHat(self._ptr, hat, self._HAT_BITS[value])

    def close(self) -> None:
        self._js.quit()
        self._sdl.SDL_JoystickDetachVirtual(self.index)


def _sdl_library() -> Any:
    import ctypes
    import glob

    import pygame

    # pygame-ce wheels bundle their own libSDL2 next to the package; the one
    # pygame's extension modules are linked against is the one to call
    here = Path(pygame.__file__).parent
    found = sorted(glob.glob(str(here.parent / "pygame_ce.libs" / "libSDL2-2*.so*")))
    found += sorted(glob.glob(str(here.parent / "pygame.libs" / "libSDL2-2*.so*")))
    for name in [*found, "libSDL2-2.0.so.0"]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise InputError("cannot find the SDL2 library pygame uses")


# ---------------------------------------------------------------------------
# Keyboard (X11 global key state)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyMap:
    """X keysym names (as ``xev``/``xdotool`` spell them) → stick, buttons, hotkeys.

    The stick goes to full deflection while a direction key is held; with
    ``ramp_s`` > 0 it moves there over that many seconds instead, which gives
    steering values between the extremes (a model trained on only -1/0/+1
    steers jerkily).
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

    def to_json(self) -> dict[str, Any]:
        return {
            "stick": {"left": self.left, "right": self.right, "up": self.up, "down": self.down},
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
        if not isinstance(stick, dict) or set(stick) - {"left", "right", "up", "down"}:
            raise InputError(f"{where}: 'stick' maps left/right/up/down to key names")
        try:
            ramp = float(obj.get("ramp_s", base.ramp_s))
        except (TypeError, ValueError):
            raise InputError(f"{where}: ramp_s is not a number") from None
        if ramp < 0:
            raise InputError(f"{where}: ramp_s {ramp} is negative")

        def keys(section: str, names: Iterable[str], default: Mapping[str, tuple[str, ...]]):  # type: ignore[no-untyped-def]
            sec = obj.get(section)
            if sec is None:
                return dict(default)
            if not isinstance(sec, dict):
                raise InputError(f"{where}: {section} must be an object of name → key names")
            out: dict[str, tuple[str, ...]] = {}
            for name, ks in sec.items():
                if name not in names:
                    raise InputError(f"{where}: {section}: unknown name {name!r}")
                ks = [ks] if isinstance(ks, str) else ks
                if not isinstance(ks, list) or not all(isinstance(k, str) for k in ks):
                    raise InputError(f"{where}: {section}.{name}: a key name or a list of them")
                out[name] = tuple(ks)
            return out

        return cls(
            left=str(stick.get("left", base.left)),
            right=str(stick.get("right", base.right)),
            up=str(stick.get("up", base.up)),
            down=str(stick.get("down", base.down)),
            ramp_s=ramp,
            buttons=keys("buttons", BUTTONS, base.buttons),
            hotkeys=keys("hotkeys", HOTKEYS, base.hotkeys),
        )

    @classmethod
    def load(cls, path: str | Path) -> KeyMap:
        return cls.from_json(_load_json(path), str(path))


class Keyboard:
    """The keyboard of an X display, read through ``XQueryKeymap``."""

    def __init__(self, display: str | None = None, keymap: KeyMap | None = None) -> None:
        from kartdata.capture import _open_display

        self.keymap = keymap or KeyMap()
        self._d = _open_display(display)
        self._code_cache: dict[str, int] = {}
        km = self.keymap
        self._stick = {
            d: self._code(k)
            for d, k in zip("lrud", (km.left, km.right, km.up, km.down), strict=True)
        }
        self._buttons = {b: [self._code(k) for k in ks] for b, ks in km.buttons.items()}
        self._hotkeys = {h: [self._code(k) for k in ks] for h, ks in km.hotkeys.items()}
        self._x = self._y = 0.0
        self._last: float | None = None

    def _code(self, name: str) -> int:
        from Xlib import XK

        if name not in self._code_cache:
            sym = XK.string_to_keysym(name)
            code = self._d.keysym_to_keycode(sym) if sym else 0
            if not code:
                raise InputError(f"key {name!r} is not a key on this X display's keyboard")
            self._code_cache[name] = code
        return self._code_cache[name]

    def held_codes(self) -> set[int]:
        bits = self._d.query_keymap()
        return {i * 8 + b for i, byte in enumerate(bits) if byte for b in range(8) if byte >> b & 1}

    def read(self) -> Controls:
        import time

        held = self.held_codes()
        s = {d: c in held for d, c in self._stick.items()}
        tx = float(s["r"]) - float(s["l"])
        ty = float(s["u"]) - float(s["d"])
        now = time.monotonic()
        if self.keymap.ramp_s > 0 and self._last is not None:
            step = (now - self._last) / self.keymap.ramp_s
            self._x = _toward(self._x, tx, step)
            self._y = _toward(self._y, ty, step)
        else:
            self._x, self._y = tx, ty
        self._last = now
        buttons = frozenset(b for b, cs in self._buttons.items() if any(c in held for c in cs))
        hot = frozenset(h for h, cs in self._hotkeys.items() if any(c in held for c in cs))
        return Controls(Pad(x=self._x, y=self._y, buttons=buttons), hot)

    def close(self) -> None:
        self._d.close()


def _toward(v: float, target: float, step: float) -> float:
    if v < target:
        return min(target, v + step)
    return max(target, v - step)


def _load_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
