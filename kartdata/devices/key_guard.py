"""Releases a virtual keyboard's keys when the process that pressed them dies.

The X server keeps a key pressed through XTEST down after the client that
pressed it has gone (that is how ``xdotool keydown`` works), so a drive loop
killed with SIGKILL would leave the game with a key stuck down. The
:class:`~kartdata.devices.virtual_keyboard.VirtualKeyboard` therefore starts
this small process and tells it, one line per change, which keycodes it holds
(``d 113`` / ``u 113``); when the pipe closes — a clean close, a crash or a
SIGKILL alike — the guard releases whatever is still held and exits.

Run as ``python key_guard.py DISPLAY`` (by path: it imports nothing of kartkit,
so it starts in the time python-xlib takes); it prints ``ready`` once connected.
"""

from __future__ import annotations

import os
import signal
import sys
import time

#: How often the guard looks at its pipe (s): its delay in releasing after a kill.
POLL_S = 0.05


def main() -> int:
    from Xlib import X, display
    from Xlib.ext import xtest

    # Ctrl-C reaches the whole foreground process group: the guard must outlive
    # its parent's cleanup, and ends when the parent's pipe closes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    held: set[int] = set()
    d = display.Display(sys.argv[1])

    def release(*_: object) -> None:
        for code in sorted(held):
            xtest.fake_input(d, X.KeyRelease, code)
        held.clear()
        d.sync()

    def terminated(*_: object) -> None:
        release()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminated)
    print("ready", flush=True)
    # polled, not waited on: a write from the keyboard then never wakes this
    # process, so the key path pays a plain pipe write and no context switch
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            time.sleep(POLL_S)
            continue
        if not chunk:
            break  # the keyboard's end, whatever it was
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            op, _, code = line.decode().partition(" ")
            if code.isdigit():
                (held.add if op == "d" else held.discard)(int(code))
    release()
    d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
