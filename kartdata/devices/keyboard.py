"""The keyboard of an X display as an input: the global key state
(``XQueryKeymap`` through python-xlib), so keys are seen whatever window has
the focus — the game's window, normally — and real X key events
(``xdotool keydown``) drive it in tests."""

from __future__ import annotations

import time

from kartdata.devices.controls import Controls, InputError
from kartdata.devices.keymap import KeyMap
from kartdata.devices.x11 import keycode, open_display
from kartdata.schema import Pad


def held_keycodes(d: object) -> set[int]:
    """Keycodes down on display ``d`` now."""
    bits = d.query_keymap()  # type: ignore[attr-defined]
    return {i * 8 + b for i, byte in enumerate(bits) if byte for b in range(8) if byte >> b & 1}


def resolve(d: object, name: str, where: str = "key map") -> int:
    """The keycode of ``name``, or a one-line :class:`InputError`."""
    code = keycode(d, name)
    if not code:
        raise InputError(f"{where}: key {name!r} is not a key on this X display's keyboard")
    return code


class Keyboard:
    """The keyboard of an X display, read through ``XQueryKeymap``."""

    def __init__(self, display: str | None = None, keymap: KeyMap | None = None) -> None:
        self.keymap = keymap or KeyMap()
        self._d = open_display(display)
        try:
            km = self.keymap
            src = km.source
            self._stick = {d[0]: resolve(self._d, k, src) for d, k in km.stick.items()}
            self._buttons = {
                b: [resolve(self._d, k, src) for k in ks] for b, ks in km.buttons.items()
            }
            self._hotkeys = {
                h: [resolve(self._d, k, src) for k in ks] for h, ks in km.hotkeys.items()
            }
        except BaseException:
            self._d.close()
            raise
        self._x = self._y = 0.0
        self._last: float | None = None

    def held_codes(self) -> set[int]:
        return held_keycodes(self._d)

    def button(self, name: str) -> bool:
        """Whether the key named ``name`` is down now (e.g. a takeover key)."""
        return resolve(self._d, name, "takeover key") in self.held_codes()

    def read(self) -> Controls:
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
