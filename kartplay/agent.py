"""What decides the pad: the small interface between the protocol server and an
agent (a model, a script, a human override).

The server asks in one of two ways:

- free-run: :meth:`PadSource.latest` must answer at once with the most recent
  decision (the agent runs its own loop on the latest frame);
- lockstep: :meth:`PadSource.step` may block until the agent has acted on the
  current frame, up to ``timeout`` seconds; ``None`` means it did not act in time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from kartdata.schema import Pad

from .pad import NEUTRAL

MAX_CONTROLLERS = 4


@runtime_checkable
class PadSource(Protocol):
    def latest(self, controller: int) -> Pad:
        """The current pad for ``controller``; never blocks."""
        ...

    def step(self, controller: int, timeout: float) -> Pad | None:
        """Act once for ``controller`` and return the pad, or ``None`` after ``timeout``."""
        ...


class ScriptedPads:
    """A fixed script of pads per controller, advanced by every request.

    Both :meth:`latest` and :meth:`step` hand out the next pad of the script
    (wrapping around), so a test knows exactly which pad each poll was served.
    Controllers without a script get the neutral pad.
    """

    def __init__(self, scripts: dict[int, Sequence[Pad]]) -> None:
        self._scripts = {c: list(p) for c, p in scripts.items() if p}
        self._next = dict.fromkeys(self._scripts, 0)
        self._lock = threading.Lock()

    def _advance(self, controller: int) -> Pad:
        script = self._scripts.get(controller)
        if not script:
            return NEUTRAL
        with self._lock:
            i = self._next[controller]
            self._next[controller] = i + 1
        return script[i % len(script)]

    def latest(self, controller: int) -> Pad:
        return self._advance(controller)

    def step(self, controller: int, timeout: float) -> Pad | None:
        return self._advance(controller)


class LatestPads:
    """A mailbox of the latest pad per controller, written by an agent loop.

    ``latest`` reads it; ``step`` waits until a pad newer than the request is
    published (lockstep: the emulator waits for the agent's next action).
    """

    def __init__(self) -> None:
        self._pads = [NEUTRAL] * MAX_CONTROLLERS
        self._versions = [0] * MAX_CONTROLLERS
        self._cond = threading.Condition()
        self.wanted = [0] * MAX_CONTROLLERS

    def publish(self, controller: int, pad: Pad) -> None:
        with self._cond:
            self._pads[controller] = pad
            self._versions[controller] += 1
            self._cond.notify_all()

    def latest(self, controller: int) -> Pad:
        return self._pads[controller]

    def step(self, controller: int, timeout: float) -> Pad | None:
        with self._cond:
            seen = self._versions[controller]
            self.wanted[controller] += 1
            self._cond.notify_all()
            ok = self._cond.wait_for(lambda: self._versions[controller] != seen, timeout)
            return self._pads[controller] if ok else None

    def wait_wanted(self, controller: int, seen: int, timeout: float) -> int:
        """Block until the server asked for more than ``seen`` steps; returns the count."""
        with self._cond:
            self._cond.wait_for(lambda: self.wanted[controller] > seen, timeout)
            return self.wanted[controller]


class AgentLoop:
    """Runs ``decide()`` (frame → pad) in its own thread and publishes to a
    :class:`LatestPads`.

    Free-run: it loops as fast as frames come. Lockstep: it acts only when the
    server asks for a step, so every action is taken on a frame grabbed after
    the emulator stopped waiting.
    """

    def __init__(
        self,
        decide: Callable[[], Pad],
        *,
        controller: int = 0,
        lockstep: bool = False,
        mailbox: LatestPads | None = None,
    ) -> None:
        self.decide = decide
        self.controller = controller
        self.lockstep = lockstep
        self.mailbox = mailbox or LatestPads()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kartplay-agent", daemon=True)

    def start(self) -> AgentLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        seen = 0
        try:
            while not self._stop.is_set():
                if self.lockstep:
                    wanted = self.mailbox.wait_wanted(self.controller, seen, 0.2)
                    if wanted <= seen:
                        continue
                    seen = wanted
                self.mailbox.publish(self.controller, self.decide())
        except BaseException as e:  # surfaced by the CLI's status loop
            self.error = e


def replay_pads(paths: Sequence[str], *, trust_pickle: bool = False) -> ScriptedPads:
    """Serve recorded pads, one recording per controller (0, 1, …), in a loop:
    play a recording back into the emulator, or a known script for tests."""
    from kartdata.errors import SourceError
    from kartdata.sources import open_source

    if len(paths) > MAX_CONTROLLERS:
        raise SourceError(f"{len(paths)} recordings given; at most {MAX_CONTROLLERS} controllers")
    scripts: dict[int, list[Pad]] = {}
    for c, path in enumerate(paths):
        pads = [f.pad for f in open_source(path, trust_pickle=trust_pickle).frames()]
        if not pads:
            raise SourceError(f"{path}: recording has no frames to replay")
        scripts[c] = pads
    return ScriptedPads(scripts)
