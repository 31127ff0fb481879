"""Fixtures for the device tests: a key-logging X client on the test display."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class KeyLog:
    """tests/devices/key_logger.py running on a display; ``events()`` reads
    what it has logged so far as (kind, keycode, server ms) tuples."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._events: list[tuple[str, int, int]] = []
        self._pending = b""
        self.ready = False

    def events(self, wait_s: float = 0.0) -> list[tuple[str, int, int]]:
        # the raw fd, not the buffered file: select() cannot see lines that a
        # readline() has already pulled into the file's buffer
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + wait_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 1 << 16) if ready else b""
            if not chunk:
                return list(self._events)
            *lines, self._pending = (self._pending + chunk).split(b"\n")
            for line in lines:
                if line == b"ready":
                    self.ready = True
                    continue
                kind, code, t = line.decode().split()
                self._events.append((kind, int(code), int(t)))

    def until(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, int, int]]:
        """The events once there are at least ``n`` (or the deadline)."""
        deadline = time.monotonic() + timeout_s
        while len(self._events) < n and time.monotonic() < deadline:
            self.events(wait_s=min(0.1, max(0.0, deadline - time.monotonic())))
        return list(self._events)


@pytest.fixture
def key_log(xdisplay) -> Iterator[KeyLog]:  # type: ignore[no-untyped-def]
    script = Path(__file__).with_name("key_logger.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "kartkit-key-log"],
        env=xdisplay.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        log = KeyLog(proc)
        deadline = time.monotonic() + 30
        while not log.ready and proc.poll() is None and time.monotonic() < deadline:
            log.events(wait_s=0.1)
        if not log.ready:
            raise RuntimeError("the key logger did not get the focus within 30 s")
        yield log
    finally:
        proc.kill()
        proc.wait()
