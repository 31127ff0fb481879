"""A virtual keyboard: key presses sent to an X display through XTEST.

The game sees them as real key events (``xdotool keydown`` uses the same
extension), whatever window has the focus, so it works for any windowed game
and any emulator that reads the keyboard. Keys are X keysym names (``Left``,
``Up``, ``a``, ``space``, as ``xev`` prints them); the key map has the shape
of the recorder's (:class:`~kartdata.devices.keymap.KeyMap`), and every key in
it is checked against the display's keyboard when the device opens.

Every key still held is released on :meth:`VirtualKeyboard.close` (and so on
leaving the ``with`` block, on an exception, on Ctrl-C); a guard process
(:mod:`kartdata.devices.key_guard`) releases them when this process is killed
outright.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kartdata.devices.controls import InputError
from kartdata.devices.keyboard import resolve
from kartdata.devices.keymap import KeyMap
from kartdata.devices.x11 import display_name, open_display

#: How long the guard process may take to connect to the display.
GUARD_START_S = 10.0


class VirtualKeyboard:
    """Presses and releases keys on ``display`` (default ``$DISPLAY``).

    ``held`` is the set of key names this keyboard holds down now.
    """

    def __init__(
        self, display: str | None = None, keymap: KeyMap | None = None, *, guard: bool = True
    ) -> None:
        from Xlib.ext import xtest

        self.keymap = keymap or KeyMap()
        self.display = display_name(display)
        self._d = open_display(self.display)
        self._xtest = xtest
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._codes: dict[str, int] = {}
        self._guard: subprocess.Popen[bytes] | None = None
        try:
            if not self._d.has_extension("XTEST"):
                raise InputError(f"X display {self.display!r} has no XTEST extension")
            for name in sorted(self.keymap.key_names()):
                self._code(name)
            if guard:
                self._guard = _start_guard(self.display)
        except BaseException:
            self._d.close()
            raise

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = resolve(self._d, name, self.keymap.source)
        return code

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def press(self, name: str) -> None:
        self.set_held(self._held | {name})

    def release(self, name: str) -> None:
        self.set_held(self._held - {name})

    def set_held(self, names: Iterable[str]) -> None:
        """Hold exactly ``names``: release the keys held but not named, press
        the named ones not held (releases first, so that a direction change
        never shows both directions down). Names on one key share it."""
        from Xlib import X

        want = set(names)
        with self._lock:
            if want == self._held:
                return
            new = {self._code(n) for n in want}
            old = {self._codes[n] for n in self._held}
            changes = [(X.KeyRelease, c) for c in sorted(old - new)]
            changes += [(X.KeyPress, c) for c in sorted(new - old)]
            for kind, code in changes:
                self._xtest.fake_input(self._d, kind, code)
            self._held = want
            self._d.flush()
            # the game first, the guard after: its bookkeeping is off the key's path
            self._tell_guard(
                "".join(f"{'d' if k == X.KeyPress else 'u'} {c}\n" for k, c in changes)
            )

    def _tell_guard(self, lines: str) -> None:
        if self._guard is None or self._guard.stdin is None or not lines:
            return
        try:
            os.write(self._guard.stdin.fileno(), lines.encode())
        except OSError:  # the guard died: keys are still released by close()
            self._guard = None

    def release_all(self) -> None:
        self.set_held(())
        with self._lock:
            self._d.sync()

    def close(self) -> None:
        try:
            self.release_all()
        finally:
            self._d.close()
            if self._guard is not None:
                _stop_guard(self._guard)
                self._guard = None

    def __enter__(self) -> VirtualKeyboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_guard(display: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("key_guard.py")), display],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its one failure (no display) is reported here, in one line
        bufsize=0,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], GUARD_START_S)
    line = proc.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        proc.kill()
        proc.wait()
        raise InputError(
            f"the key guard process did not start on {display!r} within {GUARD_START_S:g} s"
        )
    return proc


def _stop_guard(proc: subprocess.Popen[Any]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
