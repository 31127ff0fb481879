"""What talks to hardware or the X server: screen capture, the gamepad, the
keyboard reader, and the virtual keyboard and gamepad that drive a game.

- :mod:`~kartdata.devices.controls`: what every input answers (:class:`Controls`).
- :mod:`~kartdata.devices.capture`: screen regions and windows found by title.
- :mod:`~kartdata.devices.gamepad`: a pad through SDL's GameController API.
- :mod:`~kartdata.devices.sdl`: SDL itself and its controller database.
- :mod:`~kartdata.devices.sdl_virtual`: an SDL virtual pad for tests and demos.
- :mod:`~kartdata.devices.keymap`: X key names for the pad (one file shape).
- :mod:`~kartdata.devices.keyboard`: the X keyboard as an input.
- :mod:`~kartdata.devices.virtual_keyboard`: keys pressed through XTEST (any window),
  with :mod:`~kartdata.devices.key_guard` releasing them if the process is killed.
- :mod:`~kartdata.devices.virtual_gamepad`: a uinput pad (emulators read it as real).
- :mod:`~kartdata.devices.x11`: opening an X display.

Nothing here is imported eagerly beyond the light types: pygame and python-xlib
load when a device is opened.
"""

from kartdata.devices.capture import CaptureError, Region, ScreenCapture, WindowRegion, find_window
from kartdata.devices.controls import HOTKEYS, Controls, HotkeyEdges, InputError, InputSource
from kartdata.devices.gamepad import DEFAULT_PAD_MAPPING, Binding, Gamepad, PadMapping
from kartdata.devices.keyboard import Keyboard
from kartdata.devices.keymap import KeyMap
from kartdata.devices.sdl_virtual import SdlVirtualPad
from kartdata.devices.virtual_gamepad import VirtualGamepad
from kartdata.devices.virtual_keyboard import VirtualKeyboard
from kartdata.devices.x11 import DisplayError

__all__ = [
    "DEFAULT_PAD_MAPPING",
    "HOTKEYS",
    "Binding",
    "CaptureError",
    "Controls",
    "DisplayError",
    "Gamepad",
    "HotkeyEdges",
    "InputError",
    "InputSource",
    "KeyMap",
    "Keyboard",
    "PadMapping",
    "Region",
    "ScreenCapture",
    "SdlVirtualPad",
    "VirtualGamepad",
    "VirtualKeyboard",
    "WindowRegion",
    "find_window",
]
