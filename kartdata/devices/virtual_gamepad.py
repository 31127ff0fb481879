"""A virtual gamepad through Linux uinput (python-evdev, the ``uinput`` extra).

The kernel creates a real input device (``/dev/input/event*``) that looks like
a wired Xbox 360 pad — the layout every emulator knows: DuckStation, Dolphin,
PCSX2, RetroArch, PPSSPP, mupen64plus's SDL input, Steam Input read it as they
read a pad plugged in. :meth:`VirtualGamepad.set_pad` plays an N64
:class:`~kartdata.schema.Pad` on it through the inverse of the recorder's
default pad mapping (:data:`~kartdata.devices.gamepad.DEFAULT_PAD_MAPPING`):
the stick on the left stick, A on A, B on X, Z on the left trigger, R on the
right shoulder, the C buttons on the right stick, the d-pad on the hat — so a
session recorded with a pad replays on the same controls.

When the process ends, however it ends, the kernel removes the device and
with it every pressed button. Where uinput cannot be used (no
``/dev/uinput``, no permission, python-evdev missing) the constructor raises
one :class:`~kartdata.devices.controls.InputError` line that says which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kartdata.devices.controls import InputError
from kartdata.schema import Pad

UINPUT = Path("/dev/uinput")
#: The identity the device reports: Microsoft's wired Xbox 360 pad (in SDL's
#: database and every emulator's defaults).
XBOX360_VENDOR, XBOX360_PRODUCT, XBOX360_VERSION = 0x045E, 0x028E, 0x0110
DEFAULT_NAME = "kartkit virtual pad (Xbox 360 layout)"

_AXIS_MAX = 32767
_TRIGGER_MAX = 255


def _codes(ec: Any) -> dict[str, Any]:
    """N64 button → the evdev code it presses (a key, or an axis and its value)."""
    return {
        "a": ("key", ec.BTN_SOUTH),
        "b": ("key", ec.BTN_WEST),
        "z": ("abs", ec.ABS_Z, _TRIGGER_MAX),
        "r": ("key", ec.BTN_TR),
        "l": ("key", ec.BTN_TL),
        "start": ("key", ec.BTN_START),
        "c_up": ("abs", ec.ABS_RY, -_AXIS_MAX),
        "c_down": ("abs", ec.ABS_RY, _AXIS_MAX),
        "c_left": ("abs", ec.ABS_RX, -_AXIS_MAX),
        "c_right": ("abs", ec.ABS_RX, _AXIS_MAX),
        "dpad_up": ("abs", ec.ABS_HAT0Y, -1),
        "dpad_down": ("abs", ec.ABS_HAT0Y, 1),
        "dpad_left": ("abs", ec.ABS_HAT0X, -1),
        "dpad_right": ("abs", ec.ABS_HAT0X, 1),
    }


def check_uinput(path: Path = UINPUT) -> None:
    """Raise the one-line reason why ``path`` cannot make a virtual pad here."""
    if not path.exists():
        raise InputError(
            f"virtual gamepad: {path} does not exist (load the kernel module: "
            "sudo modprobe uinput; containers need the device passed in)"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise InputError(
            f"virtual gamepad: no permission to open {path} (a udev rule giving the "
            "'input' group access, docs/devices.md, or run as root)"
        )


class VirtualGamepad:
    """A uinput pad with an Xbox 360 layout, driven by N64 pads."""

    def __init__(self, name: str = DEFAULT_NAME, *, path: Path = UINPUT) -> None:
        check_uinput(path)
        try:
            import evdev
            from evdev import ecodes as ec
        except ImportError:
            raise InputError(
                "virtual gamepad: python-evdev is not installed (pip install 'kartkit[uinput]')"
            ) from None
        self._ec = ec
        self._map = _codes(ec)
        stick = evdev.AbsInfo(0, -_AXIS_MAX - 1, _AXIS_MAX, 16, 128, 0)
        trigger = evdev.AbsInfo(0, 0, _TRIGGER_MAX, 0, 0, 0)
        hat = evdev.AbsInfo(0, -1, 1, 0, 0, 0)
        keys = [ec.BTN_SOUTH, ec.BTN_EAST, ec.BTN_NORTH, ec.BTN_WEST, ec.BTN_TL, ec.BTN_TR,
                ec.BTN_SELECT, ec.BTN_START, ec.BTN_MODE, ec.BTN_THUMBL, ec.BTN_THUMBR]  # fmt: skip
        axes = [(ec.ABS_X, stick), (ec.ABS_Y, stick), (ec.ABS_Z, trigger), (ec.ABS_RX, stick),
                (ec.ABS_RY, stick), (ec.ABS_RZ, trigger), (ec.ABS_HAT0X, hat),
                (ec.ABS_HAT0Y, hat)]  # fmt: skip
        try:
            self._ui = evdev.UInput(
                {ec.EV_KEY: keys, ec.EV_ABS: axes},
                name=name,
                vendor=XBOX360_VENDOR,
                product=XBOX360_PRODUCT,
                version=XBOX360_VERSION,
                bustype=ec.BUS_USB,
                devnode=str(path),
            )
        except (OSError, evdev.UInputError) as e:
            raise InputError(f"virtual gamepad: cannot create a uinput device: {e}") from None
        self.name = name
        #: The ``/dev/input/event*`` node the kernel made.
        self.device_path: str = self._ui.device.path
        self._state: dict[tuple[int, int], int] = {}
        self.pad = Pad()
        self.set_pad(Pad())

    def set_pad(self, pad: Pad) -> None:
        """Play ``pad`` from now on (only what changed is written)."""
        ec = self._ec
        want: dict[tuple[int, int], int] = {
            (ec.EV_ABS, ec.ABS_X): round(pad.x * _AXIS_MAX),
            (ec.EV_ABS, ec.ABS_Y): round(-pad.y * _AXIS_MAX),  # evdev: down is positive
        }
        for kind, code, *_value in self._map.values():
            want.setdefault((ec.EV_KEY if kind == "key" else ec.EV_ABS, code), 0)
        for b in pad.buttons:
            kind, code, *value = self._map[b]
            key = (ec.EV_KEY if kind == "key" else ec.EV_ABS, code)
            want[key] = 1 if kind == "key" else value[0]
        changed = False
        for key, v in want.items():
            if self._state.get(key) != v:
                self._ui.write(key[0], key[1], v)
                self._state[key] = v
                changed = True
        if changed:
            self._ui.syn()
        self.pad = pad

    def release_all(self) -> None:
        self.set_pad(Pad())

    def close(self) -> None:
        try:
            self.release_all()
        finally:
            self._ui.close()

    def __enter__(self) -> VirtualGamepad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
