"""Connecting to an X display (python-xlib), with one-line errors."""

from __future__ import annotations

import os
from typing import Any

from kartdata.errors import KartError


class DisplayError(KartError):
    """No X display to talk to."""


def display_name(display: str | None) -> str:
    """``display``, else ``$DISPLAY``; a :class:`DisplayError` when neither is set."""
    name = display if display is not None else os.environ.get("DISPLAY")
    if not name:
        raise DisplayError("no X display: set DISPLAY or pass display=':N'")
    return name


def open_display(display: str | None) -> Any:
    """An ``Xlib.display.Display`` on ``display`` (default ``$DISPLAY``)."""
    from Xlib import display as xdisplay
    from Xlib.error import DisplayError as XlibDisplayError

    name = display_name(display)
    try:
        return xdisplay.Display(name)
    except (XlibDisplayError, OSError) as e:
        raise DisplayError(f"cannot open X display {name!r}: {e}") from None


def keycode(d: Any, name: str) -> int:
    """The keycode of the X keysym ``name`` (as ``xev``/``xdotool`` spell it) on
    display ``d``; 0 when the name is no keysym or no key of its keyboard."""
    from Xlib import XK

    sym = XK.string_to_keysym(name)
    return int(d.keysym_to_keycode(sym)) if sym else 0
