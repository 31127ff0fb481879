"""What every input device answers: the pad a human holds now, plus the hotkeys.

Both the gamepad and the keyboard reader are an :class:`InputSource` whose
``read()`` returns :class:`Controls`; the recorder and the manual override only
ever see this protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kartdata.errors import KartError
from kartdata.schema import Pad

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


def load_json(path: str | Path) -> Any:
    """A mapping or key map file; its faults as one-line :class:`InputError`\\ s."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
