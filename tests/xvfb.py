"""A private X display for tests, and polling with a deadline (never sleeps as sync)."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def xvfb(size: str = "800x600x24") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Xvfb on a free display number; yields (process, ``:N``).

    ``-displayfd``: the server writes its number to a pipe once it accepts
    connections, so there is no guessing of free numbers and no polling."""
    if shutil.which("Xvfb") is None:
        raise RuntimeError("Xvfb is not installed (scripts/setup.sh installs Debian xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        # -noreset: without it the server resets whenever its last client leaves,
        # and a test's next connection can meet the reset half-way
        ["Xvfb", "-displayfd", str(w), "-screen", "0", size, "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    # Read up to the newline: the server writes the number and the newline
    # separately and dies if the pipe is closed in between.
    text, deadline = b"", time.monotonic() + 30
    while not text.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(r, 64) if ready else b""
        if not chunk:
            break
        text += chunk
    os.close(r)
    try:
        if not text.endswith(b"\n"):
            raise RuntimeError("Xvfb did not report a display number within 30 s")
        yield proc, f":{text.decode().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def poll(fn: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.02) -> T:
    """``fn()`` until it returns something other than None/False, or the deadline;
    returns the last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if (v is not None and v is not False) or time.monotonic() > deadline:
            return v
        time.sleep(interval_s)
