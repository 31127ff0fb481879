"""What SuperTuxKart says about a race on its stdout, read as it happens.

With ``--fps-debug --log=1`` the game logs one line per rendered frame
(``src/main_loop.cpp``)::

    [verbose  ] fps: time 3.441667 distance 7.493592 dt 0.042000 fps 23.809525

``time`` is the race clock in game seconds (with ``--race-now`` there is no
countdown: it runs from the first frame; the game clamps its time step when
frames are slow, so it can run slower than the wall clock); ``distance`` is the
kart's distance along the track's driveline in metres, within the current lap
(it starts again from 0 on each new lap); ``dt`` is the wall-clock frame time.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_FPS = re.compile(
    rb"fps: time (?P<time>[-0-9.]+) distance (?P<distance>[-0-9.]+) dt (?P<dt>[-0-9.]+)"
)
#: Colour codes the game wraps its lines in, even when stdout is no terminal.
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class RaceFrame:
    """One rendered frame as the game logged it."""

    time_s: float
    distance_m: float
    dt_s: float
    #: When kartkit read the line (``time.monotonic()``).
    seen_s: float


def parse_frame(line: bytes, seen_s: float = 0.0) -> RaceFrame | None:
    """The frame on a ``fps:`` line, or None for any other line."""
    m = _FPS.search(line)
    if m is None:
        return None
    return RaceFrame(
        float(m["time"]), float(m["distance"]), float(m["dt"]), seen_s or time.monotonic()
    )


#: Frames a :class:`RaceLog` keeps: 20 minutes at 30 frames/s (about 3 MB).
KEEP_FRAMES = 36_000


class RaceLog:
    """Reads the game's output on a thread: the latest frame, how many there
    were, and the last other lines (for error messages), while copying
    everything to ``copy_to``.

    Reading never stops while the game runs, so the game never blocks on a
    full pipe."""

    def __init__(
        self,
        stream: IO[bytes],
        copy_to: Path | None = None,
        keep_lines: int = 40,
        keep_frames: int = KEEP_FRAMES,
    ) -> None:
        self._stream = stream
        self._copy = copy_to.open("wb") if copy_to is not None else None
        self._cond = threading.Condition()
        self.latest: RaceFrame | None = None
        self.frames = 0
        self.lines: deque[str] = deque(maxlen=keep_lines)
        #: The last ``keep_frames`` frames, oldest first (when each was read:
        #: when the game had just shown the frame before it).
        self.history: deque[RaceFrame] = deque(maxlen=keep_frames)
        self.ended = False
        self._t = threading.Thread(target=self._run, name="stk-race-log", daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            for raw in self._stream:
                self._line(raw)
        except (OSError, ValueError):
            pass  # the pipe closed under us: the game has gone
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()
            if self._copy is not None:
                self._copy.close()

    def _line(self, raw: bytes) -> None:
        if self._copy is not None:
            self._copy.write(raw)
        frame = parse_frame(raw)
        with self._cond:
            if frame is None:
                text = _ANSI.sub(b"", raw).decode(errors="replace").strip()
                if text:
                    self.lines.append(text)
            else:
                self.latest = frame
                self.history.append(frame)
                self.frames += 1
            self._cond.notify_all()

    def wait_for(
        self, ok: Callable[[RaceFrame | None], bool], timeout_s: float
    ) -> RaceFrame | None:
        """Waits until ``ok(latest_frame)`` is true (the frame, possibly None),
        the game's output ends, or the deadline; returns the frame that
        satisfied it, or None."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if ok(self.latest):
                    return self.latest
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    return None
                self._cond.wait(left)

    def tail(self, n: int = 3) -> str:
        """The last ``n`` non-frame lines, joined for a one-line message."""
        with self._cond:
            return " | ".join(list(self.lines)[-n:])

    def join(self, timeout_s: float = 5.0) -> None:
        self._t.join(timeout_s)


def frames_in(lines: Iterable[bytes]) -> list[RaceFrame]:
    """Every frame in a saved copy of the game's output."""
    out = []
    for line in lines:
        f = parse_frame(line, seen_s=-1.0)
        if f is not None:
            out.append(f)
    return out
