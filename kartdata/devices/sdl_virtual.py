"""An SDL virtual joystick that looks like a real, named pad, for tests and
demos without hardware.

:class:`SdlVirtualPad` takes the raw layout of one of SDL's database entries
(by default ``Microsoft X-Box 360 pad``, the name Linux's xpad driver gives a
wired Xbox 360 pad: axes 0/1 left stick, 2 left trigger, 3/4 right stick, 5
right trigger; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB, 6 Back, 7 Start, 8 Guide,
9/10 stick clicks; hat 0 the d-pad), attaches a virtual joystick
(``SDL_JoystickAttachVirtualEx``) with that name, vendor and product, and gives
it that entry's mapping, so :class:`~kartdata.devices.gamepad.Gamepad` reads it
through SDL's GameController layer exactly as it would read the real pad. Only
the bus differs (SDL's virtual bus is not in its database), hence the entry is
added again under the virtual pad's GUID. It is driven by raw index, like the
hardware: ``set_axis(2, 1.0)`` is the left trigger of an Xbox pad.
"""

from __future__ import annotations

import ctypes
import re
from typing import ClassVar

from kartdata.devices import sdl
from kartdata.devices.controls import InputError

#: The pad :class:`SdlVirtualPad` imitates unless told otherwise.
DEFAULT_VIRTUAL_MODEL = "Microsoft X-Box 360 pad"

_TRIGGERS = ("lefttrigger", "righttrigger")


class _Desc(ctypes.Structure):
    """SDL_VirtualJoystickDesc (SDL 2.24+, version 1)."""

    _fields_: ClassVar = [
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    ]


def _prototypes(lib: ctypes.CDLL) -> None:
    c = ctypes
    lib.SDL_JoystickAttachVirtualEx.restype = c.c_int
    lib.SDL_JoystickAttachVirtualEx.argtypes = [c.POINTER(_Desc)]
    lib.SDL_JoystickFromInstanceID.restype = c.c_void_p
    lib.SDL_JoystickFromInstanceID.argtypes = [c.c_int32]
    lib.SDL_JoystickSetVirtualAxis.argtypes = [c.c_void_p, c.c_int, c.c_int16]
    lib.SDL_JoystickSetVirtualButton.argtypes = [c.c_void_p, c.c_int, c.c_uint8]
    lib.SDL_JoystickSetVirtualHat.argtypes = [c.c_void_p, c.c_int, c.c_uint8]
    lib.SDL_JoystickDetachVirtual.argtypes = [c.c_int]


class SdlVirtualPad:
    """A virtual SDL joystick with the identity and raw layout of SDL's database
    entry ``model``; ``index`` is its SDL device index (for ``Gamepad(index)``)."""

    _HAT_BITS: ClassVar[dict[tuple[int, int], int]] = {
        (0, 0): 0,
        (0, 1): 1,
        (1, 0): 2,
        (0, -1): 4,
        (-1, 0): 8,
        (1, 1): 3,
        (1, -1): 6,
        (-1, -1): 12,
        (-1, 1): 9,
    }

    def __init__(self, model: str = DEFAULT_VIRTUAL_MODEL) -> None:
        sdl.init()
        self._sdl = sdl.library()
        _prototypes(self._sdl)
        guid, self.mapping = _entry(model)
        self.model = model
        elements = dict(p.split(":", 1) for p in self.mapping.split(",") if ":" in p)
        raw = list(elements.values())
        self.axes = 1 + max((int(m[1]) for m in map(_AXIS.fullmatch, raw) if m), default=1)
        self.buttons = 1 + max((int(m[1]) for m in map(_BUTTON.fullmatch, raw) if m), default=0)
        self.hats = 1 + max((int(m[1]) for m in map(_HAT.fullmatch, raw) if m), default=-1)
        # the raw axes the mapping reads as triggers rest at -1 (released), as on hardware
        self._trigger_axes = {
            int(m[1]) for k, v in elements.items() if k in _TRIGGERS and (m := _AXIS.fullmatch(v))
        }
        vendor, product = (
            int.from_bytes(bytes.fromhex(guid[8:12]), "little"),
            int.from_bytes(bytes.fromhex(guid[16:20]), "little"),
        )
        self._name = model.encode()
        desc = _Desc(
            version=1,
            type=0,  # unknown: SDL must not invent a mapping of its own for it
            naxes=self.axes,
            nbuttons=self.buttons,
            nhats=self.hats,
            vendor_id=vendor,
            product_id=product,
            name=self._name,
        )
        self.index = self._sdl.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        if self.index < 0:
            raise InputError(f"SDL could not attach a virtual joystick: {sdl.error()}")
        import pygame

        sdl.pump()
        self._js = pygame.joystick.Joystick(self.index)
        self.guid = self._js.get_guid()
        sdl.add_mapping(self.guid, model, self.mapping)
        self._ptr = self._sdl.SDL_JoystickFromInstanceID(self._js.get_instance_id())
        for axis in range(self.axes):
            self.set_axis(axis, -1.0 if axis in self._trigger_axes else 0.0)

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

    def __enter__(self) -> SdlVirtualPad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_AXIS = re.compile(r"[+-]?a(\d+)~?")
_BUTTON = re.compile(r"b(\d+)")
_HAT = re.compile(r"h(\d+)\.\d+")


def _entry(model: str) -> tuple[str, str]:
    """GUID and mapping of SDL's Linux database entry for ``model``."""
    for line in sdl.database():
        guid, name, rest = line.split(",", 2)
        if name == model and "platform:Linux" in rest:
            keep = [p for p in rest.split(",") if p and not p.startswith(("platform:", "crc:"))]
            return guid, ",".join(keep)
    raise InputError(f"SDL's controller database has no Linux pad named {model!r}")
