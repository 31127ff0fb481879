"""The key map between kartkit's N64-shaped pad and SuperTuxKart's default keys.

SuperTuxKart's keyboard defaults (its ``input.xml``): arrows steer, Up
accelerates, Down brakes, space fires, N is nitro, V skids (drifts). The pad
keeps MarioKart 64's meaning of each control, so a model's outputs mean the
same in every game: the stick's x steers, A accelerates, B brakes, Z uses the
item, R drifts, L is nitro, and C-up (a camera button in MarioKart 64, which
rescues the kart by itself) is SuperTuxKart's rescue, BackSpace, which puts
the kart back on the road (:data:`RESCUE_BUTTON`, pressed by
:mod:`kartplay.rescue` when the view stands still). The stick's up/down have
no job in the game and sit on Page Up/Down, which it does not use. The hotkeys (F5–F10) are the
recorder's defaults; the game does not use them either.

``kartdata record --keyboard --keymap stk-keys.json`` then records a human's
Up as ``a`` held, and ``kartplay drive-window … --keymap stk-keys.json``
presses Up when the policy holds ``a``. :func:`write_keymap` writes the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from kartdata.devices import KeyMap

STK_KEYMAP = KeyMap(
    left="Left",
    right="Right",
    up="Prior",
    down="Next",
    buttons={
        "a": ("Up",),
        "b": ("Down",),
        "z": ("space",),
        "r": ("v",),
        "l": ("n",),
        "c_up": ("BackSpace",),
    },
)
#: The pad button that is the game's rescue in :data:`STK_KEYMAP`.
RESCUE_BUTTON = "c_up"


def write_keymap(path: Path) -> Path:
    """Writes :data:`STK_KEYMAP` as a key map file."""
    path.write_text(json.dumps(STK_KEYMAP.to_json(), indent=2) + "\n")
    return path
