"""SDL, as pygame-ce loaded it: the joystick and GameController subsystems
without a window, the C library itself (for what pygame does not wrap), and
SDL's controller database.

The database is SDL's own list of pads it knows (by GUID: bus, vendor, product,
name), each mapped to the standard GameController layout (``a``, ``b``,
``back``, ``leftx``, ``lefttrigger``, …). :func:`add_mapping` adds or replaces
an entry, exactly as ``SDL_GAMECONTROLLERCONFIG`` would.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from kartdata.devices.controls import InputError

_lock = threading.Lock()


def init() -> None:
    """Start SDL's joystick and GameController subsystems without a window
    (dummy video driver when no other is chosen), reading pads while another
    window has the focus."""
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    with _lock:
        import pygame
        from pygame._sdl2 import controller

        if not pygame.display.get_init():
            # The dummy driver for SDL's own start only: left in the environment,
            # it would reach the games and emulators this process starts, which
            # then cannot open their window (SuperTuxKart: "Could not initialize
            # display!").
            chosen = "SDL_VIDEODRIVER" in os.environ
            if not chosen:
                os.environ["SDL_VIDEODRIVER"] = "dummy"
            try:
                pygame.display.init()
            finally:
                if not chosen:
                    del os.environ["SDL_VIDEODRIVER"]
        if not pygame.joystick.get_init():
            pygame.joystick.init()
        if not controller.get_init():
            controller.init()


def pump() -> None:
    """Let SDL update device state (hot-plugging and axis/button changes)."""
    import pygame

    pygame.event.pump()


@cache
def library() -> Any:
    """The libSDL2 pygame's extension modules are linked against (pygame-ce
    wheels bundle their own next to the package), so that both see one device
    list and one controller database."""
    import pygame

    here = Path(pygame.__file__).parent
    found = sorted(glob.glob(str(here.parent / "pygame_ce.libs" / "libSDL2-2*.so*")))
    found += sorted(glob.glob(str(here.parent / "pygame.libs" / "libSDL2-2*.so*")))
    for name in [*found, "libSDL2-2.0.so.0"]:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.SDL_GameControllerAddMapping.argtypes = [ctypes.c_char_p]
        lib.SDL_GameControllerAddMapping.restype = ctypes.c_int
        lib.SDL_GameControllerNumMappings.restype = ctypes.c_int
        lib.SDL_GameControllerMappingForIndex.argtypes = [ctypes.c_int]
        lib.SDL_GameControllerMappingForIndex.restype = ctypes.c_void_p
        lib.SDL_GetError.restype = ctypes.c_char_p
        lib.SDL_free.argtypes = [ctypes.c_void_p]
        return lib
    raise InputError("cannot find the SDL2 library pygame uses")


def error() -> str:
    return (library().SDL_GetError() or b"").decode("utf-8", "replace")


def add_mapping(guid: str, name: str, mapping: str) -> None:
    """Add or replace SDL's database entry for ``guid``. ``mapping``: SDL's
    ``a:b0,b:b1,leftx:a0,…`` (the part after GUID and name)."""
    init()
    # SDL appends ``crc:…,`` to the line as it stands: it must end with a comma
    line = f"{guid},{name},{mapping.strip().strip(',')},"
    if library().SDL_GameControllerAddMapping(line.encode()) < 0:
        raise InputError(f"SDL rejected the controller mapping {line!r}: {error()}")


def database() -> list[str]:
    """Every entry of SDL's controller database, as ``GUID,name,mapping`` lines."""
    init()
    lib = library()
    out = []
    for i in range(lib.SDL_GameControllerNumMappings()):
        p = lib.SDL_GameControllerMappingForIndex(i)
        if p:
            out.append(ctypes.string_at(p).decode("utf-8", "replace"))
            lib.SDL_free(p)
    return out


class _Guid(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint8 * 16)]


def mapping_for(guid: str) -> dict[str, str] | None:
    """SDL's current mapping for the pad ``guid`` (``{'a': 'b0', …}``; ``crc``,
    ``platform`` and hints left out), None when SDL maps no such pad."""
    init()
    lib = library()
    lib.SDL_JoystickGetGUIDFromString.argtypes = [ctypes.c_char_p]
    lib.SDL_JoystickGetGUIDFromString.restype = _Guid
    lib.SDL_GameControllerMappingForGUID.argtypes = [_Guid]
    lib.SDL_GameControllerMappingForGUID.restype = ctypes.c_void_p
    p = lib.SDL_GameControllerMappingForGUID(lib.SDL_JoystickGetGUIDFromString(guid.encode()))
    if not p:
        return None
    line = ctypes.string_at(p).decode("utf-8", "replace")
    lib.SDL_free(p)
    parts = (part.split(":", 1) for part in line.split(",")[2:] if ":" in part)
    return {k: v for k, v in parts if k not in ("crc", "platform", "hint")}
