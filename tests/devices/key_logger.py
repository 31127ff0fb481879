"""A real X client that logs the key events it receives: a python-xlib window
that takes the input focus and prints ``press CODE TIME`` / ``release CODE TIME``
(X server milliseconds) for every KeyPress / KeyRelease, flushed at once.

Run as ``python key_logger.py TITLE``; prints ``ready`` once it has the focus.
It turns the server's autorepeat off first, so a held key is one press and one
release, as the virtual keyboard sent it. Exits on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import contextlib
import sys
import threading

from Xlib import X, display


def main() -> None:
    d = display.Display()
    d.change_keyboard_control(auto_repeat_mode=X.AutoRepeatModeOff)
    screen = d.screen()
    win = screen.root.create_window(
        0, 0, 64, 48, 0, screen.root_depth,
        event_mask=X.KeyPressMask | X.KeyReleaseMask | X.FocusChangeMask | X.ExposureMask,
    )  # fmt: skip
    win.set_wm_name(sys.argv[1])
    win.map()
    d.sync()
    threading.Thread(target=lambda: (sys.stdin.read(), d.close()), daemon=True).start()
    while True:
        e = d.next_event()
        if e.type == X.Expose:
            win.set_input_focus(X.RevertToParent, X.CurrentTime)
            d.sync()
        elif e.type == X.FocusIn:
            print("ready", flush=True)
        elif e.type in (X.KeyPress, X.KeyRelease):
            kind = "press" if e.type == X.KeyPress else "release"
            print(f"{kind} {e.detail} {e.time}", flush=True)


if __name__ == "__main__":
    # the display closes under it when stdin closes: that is the end
    with contextlib.suppress(Exception):
        main()
