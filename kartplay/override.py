"""Manual override and correction recording for the play server.

:class:`ManualOverride` wraps the AI's pad source. While the override button of
a human's gamepad is held, that controller is served the human's pad instead of
the AI's; controllers given as ``players`` are always the human's (two players:
controller 0 the AI, controller 1 a person). Gamepads are read by one poller
thread (SDL must not be pumped from the server's many handler threads); polls
only read the latest state, so serving never waits on a pad.

:class:`CorrectionRecorder` writes every takeover stretch as its own native
session tagged ``recovery``: the frames the agent was looking at and the pad the
human answered with — the human correcting the agent's own mistakes, the most
valuable training data there is.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kartdata.devices.controls import Controls
from kartdata.errors import KartError
from kartdata.schema import RECOVERY_TAG, Pad, SessionMeta
from kartdata.sources.native import SessionWriter, encode_image

#: SDL's controller Back/Select/Share button: held to take over.
DEFAULT_OVERRIDE_BUTTON: str = "back"


class HumanPad(Protocol):
    """What the override reads from a person's pad or keyboard
    (:class:`kartdata.devices.gamepad.Gamepad`, :class:`kartdata.devices.keyboard.Keyboard`)."""

    def read(self) -> Controls: ...

    def button(self, name: str | int, /) -> bool: ...


class AIPads(Protocol):
    """The play server's pad source (``kartplay.agent.PadSource``)."""

    def latest(self, controller: int) -> Pad: ...

    def step(self, controller: int, timeout: float) -> Pad | None: ...


@dataclass(frozen=True, slots=True)
class _Human:
    pad: Pad
    holding: bool


class ManualOverride:
    """A pad source: the AI's pads, except where a human takes over.

    ``takeover``: controller → the human pad that may take it over by holding
    ``button``. ``players``: controller → a human pad that always drives it.
    ``recorder`` gets every takeover stretch. Call :meth:`start` (or use as a
    context manager) to poll the pads at ``poll_hz``; :meth:`poll` polls once.
    """

    def __init__(
        self,
        ai: AIPads,
        *,
        takeover: Mapping[int, HumanPad] | None = None,
        players: Mapping[int, HumanPad] | None = None,
        button: str | int = DEFAULT_OVERRIDE_BUTTON,
        poll_hz: float = 250.0,
        recorder: CorrectionRecorder | None = None,
        on_change: Callable[[int, bool], None] | None = None,
    ) -> None:
        self.ai = ai
        self.takeover = dict(takeover or {})
        self.players = dict(players or {})
        both = set(self.takeover) & set(self.players)
        if both:
            raise ValueError(f"controller(s) {sorted(both)} both AI-with-takeover and human")
        self.button = button
        self.poll_hz = poll_hz
        self.recorder = recorder
        self.on_change = on_change
        self._state: dict[int, _Human] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.takeovers = 0

    # -- the pad source --------------------------------------------------------

    def overriding(self, controller: int) -> bool:
        s = self._state.get(controller)
        return controller in self.takeover and s is not None and s.holding

    def human_pad(self, controller: int) -> Pad | None:
        s = self._state.get(controller)
        if s is None:
            return None
        if controller in self.players or s.holding:
            return s.pad
        return None

    def latest(self, controller: int) -> Pad:
        pad = self.human_pad(controller)
        return pad if pad is not None else self.ai.latest(controller)

    def step(self, controller: int, timeout: float) -> Pad | None:
        pad = self.human_pad(controller)
        return pad if pad is not None else self.ai.step(controller, timeout)

    # -- polling ---------------------------------------------------------------

    def poll(self) -> None:
        """Read every human pad once and act on takeovers starting or ending."""
        with self._lock:
            for c, pad in self.players.items():
                self._state[c] = _Human(pad.read().pad, True)
            for c, pad in self.takeover.items():
                holding = pad.button(self.button)
                human = pad.read().pad
                before = self._state.get(c)
                self._state[c] = _Human(human, holding)
                was = before is not None and before.holding
                if holding != was:
                    if holding:
                        self.takeovers += 1
                    if self.recorder is not None:
                        if holding:
                            self.recorder.begin(lambda c=c: self._state[c].pad)
                        else:
                            self.recorder.end()
                    if self.on_change is not None:
                        self.on_change(c, holding)

    def _run(self) -> None:
        period = 1.0 / self.poll_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.poll()
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.monotonic()

    def start(self) -> ManualOverride:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="kartplay-override", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.recorder is not None:
            self.recorder.end()

    def __enter__(self) -> ManualOverride:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class CorrectionConfig:
    """Takeovers recorded as sessions (``--record-corrections`` and the labels
    their ``session.json`` gets); the same for ``serve`` and ``drive-window``."""

    #: Where each takeover's session goes (None: takeovers are not recorded).
    out: Path | None = None
    fps: float = 15.0
    game: str = "unknown"
    track: str = "unknown"
    player: str = "human"

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise KartError(f"correction fps {self.fps} is not a positive number")


class CorrectionRecorder:
    """Writes each takeover as a native session ``<out>/correction-NNN`` tagged
    ``recovery`` (session-wide and on every row), at ``config.fps`` frames a
    second, from ``frames`` (e.g. ``lambda: capture.grab(region)`` or the
    server's latest frame; None: no frame yet, skipped) and the human's pad."""

    def __init__(
        self,
        config: CorrectionConfig,
        frames: Callable[[], np.ndarray | None],
        *,
        image_format: str = "png",
    ) -> None:
        if config.out is None:
            raise KartError("a correction recorder needs a directory to write to")
        self.out = Path(config.out)
        self.frames = frames
        self.fps = config.fps
        self.meta = SessionMeta(
            game=config.game,
            track=config.track,
            player=config.player,
            fps=config.fps,
            tags=(RECOVERY_TAG,),
            image_format=image_format,
            extra={"recorder": "kartplay correction"},
        )
        self.sessions: list[Path] = []
        self.error: BaseException | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None

    def begin(self, pad: Callable[[], Pad]) -> None:
        """Start a new correction session (no-op if one is running)."""
        if self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._record, args=(pad, self._stop), name="kartplay-correction", daemon=True
        )
        self._thread.start()

    def end(self) -> None:
        """Close the running correction session, if any."""
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = self._stop = None

    def _next_path(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        n = 1
        while (self.out / f"correction-{n:03d}").exists():
            n += 1
        path = self.out / f"correction-{n:03d}"
        path.mkdir()
        return path

    def _record(self, pad: Callable[[], Pad], stop: threading.Event) -> None:
        from dataclasses import replace

        writer: SessionWriter | None = None
        period_ns = round(1e9 / self.fps)
        t0 = time.monotonic_ns()
        k = 0
        try:
            while not stop.is_set():
                image = self.frames()
                if image is not None:
                    if writer is None:
                        h, w = image.shape[:2]
                        writer = SessionWriter(
                            self._next_path(), replace(self.meta, width=w, height=h)
                        )
                        self.sessions.append(writer.path)
                    t_ns = time.monotonic_ns()
                    data = encode_image(image, self.meta.image_format)
                    writer.write(data, pad(), t_ns=t_ns, tags=(RECOVERY_TAG,))
                k = max(k + 1, (time.monotonic_ns() - t0) // period_ns + 1)
                delay = (t0 + k * period_ns - time.monotonic_ns()) / 1e9
                if delay > 0:
                    stop.wait(delay)
        except BaseException as e:  # reported by whoever owns the recorder
            self.error = e
        finally:
            if writer is not None:
                writer.close()
