"""``kartplay serve``: wire a pad source (a model on captured frames, or a
recording) to the protocol server, with manual override, a second human player,
correction recording and a status line.

Everything is built by :class:`Serving` from one :class:`ServeOptions`, so a
notebook or a test gets exactly what the CLI runs::

    with Serving(ServeOptions(model="runs/a/export/keras", region="0,0,640,480")) as s:
        print(s.address, s.status_line())

The pieces, from the screen to the socket:

- :class:`FrameFeed` grabs the captured region (fixed, or an X11 window found by
  title); the agent and the correction recorder share its frames;
- :class:`ModelAgent` turns a fresh frame into a pad with the policy
  (:mod:`kartplay.policy`: the artifact runs THE preprocessing itself) and times
  capture and inference separately;
- an :class:`~kartplay.agent.AgentLoop` runs it (free-run: continuously;
  lockstep: once per step the server asks for) into a
  :class:`~kartplay.agent.LatestPads` mailbox;
- optionally :class:`~kartplay.override.ManualOverride` wraps that mailbox
  (a human takes controller 0 over by holding a button; controller 1 a human),
  with a :class:`~kartplay.override.CorrectionRecorder` writing each takeover;
- :class:`~kartplay.protocol.PadServer` answers the plugin.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kartdata.errors import KartError
from kartdata.schema import Pad

from .agent import AgentLoop, LatestPads, PadSource, replay_pads
from .emuframes import DEFAULT_RING_PATH, EmulatorFrameFeed
from .override import (
    DEFAULT_OVERRIDE_BUTTON,
    CorrectionConfig,
    CorrectionRecorder,
    ManualOverride,
)
from .pad import NEUTRAL
from .policy import PolicyConfig
from .protocol import PadServer, ServerConfig

FrameSource = Literal["screen", "emulator"]
FRAME_SOURCES: tuple[FrameSource, ...] = ("screen", "emulator")

#: Controller driven by the AI (and taken over by the override pad).
AI_CONTROLLER = 0
#: Controller driven by ``--human-pad`` (two players).
HUMAN_CONTROLLER = 1


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``kartplay serve`` takes, checked here once, before anything
    slow (a model, a gamepad, the screen) is opened."""

    #: An exported model to drive with, or recordings to replay (one per controller).
    model: str | None = None
    replay: tuple[str, ...] = ()
    server: ServerConfig = field(default_factory=ServerConfig)
    #: Where the agent's frames come from: the screen (``region`` / ``window``)
    #: or the emulator itself (the plugin's frame ring at ``frames_ring``).
    frames: FrameSource = "screen"
    frames_ring: str = DEFAULT_RING_PATH
    #: Frames: a fixed screen region ``X,Y,W,H``, or a window found by title.
    region: str | None = None
    window: str | None = None
    #: How long to wait at start for ``window`` to show.
    window_wait: float = 10.0
    #: X display to capture (None: $DISPLAY).
    display: str | None = None
    #: Free-run: most agent steps a second (0: as fast as capture and model go).
    max_fps: float = 0.0
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    #: SDL joystick index whose ``override_button`` takes controller 0 over.
    override_pad: int | None = None
    override_button: str | int = DEFAULT_OVERRIDE_BUTTON
    #: SDL joystick index that always drives controller 1.
    human_pad: int | None = None
    #: Every takeover written as a native session (tagged recovery).
    corrections: CorrectionConfig = field(default_factory=CorrectionConfig)
    status: bool = True
    status_interval: float = 1.0

    def __post_init__(self) -> None:
        if bool(self.model) == bool(self.replay):
            raise KartError("give either a MODEL or --replay RECORDING (not both, not neither)")
        if self.region and self.window:
            raise KartError("give --region or --window, not both")
        if self.frames not in FRAME_SOURCES:
            raise KartError(f"--frames {self.frames!r} is not one of {', '.join(FRAME_SOURCES)}")
        if self.frames == "emulator" and (self.region or self.window):
            raise KartError("--frames emulator takes the emulator's frames: drop --region/--window")
        needs_frames = self.model or self.corrections.out
        if needs_frames and self.frames == "screen" and not (self.region or self.window):
            what = "serving a model" if self.model else "--record-corrections"
            raise KartError(
                f"{what} needs frames: give --region X,Y,W,H, --window TITLE or --frames emulator"
            )
        if self.corrections.out and self.override_pad is None:
            raise KartError("--record-corrections records takeovers: give --override-pad too")
        if self.override_pad is not None and self.override_pad == self.human_pad:
            raise KartError(
                f"pad {self.override_pad} cannot both override controller 0 and drive controller 1"
            )
        if self.max_fps < 0:
            raise KartError("--max-fps must be ≥ 0")
        if self.status_interval <= 0:
            raise KartError("status interval must be positive")


# -- frames ---------------------------------------------------------------------


class FrameFeed:
    """Captures the serving region; remembers the latest frame so that the
    correction recorder stores what the agent was looking at."""

    def __init__(self, region: str | None, window: str | None, display: str | None) -> None:
        from kartdata.devices.capture import Region, ScreenCapture, WindowRegion

        self.capture = ScreenCapture(display)
        self.window = WindowRegion(window, display) if window else None
        self.fixed = Region.parse(region) if region else None
        self._lock = threading.Lock()
        self._latest: tuple[float, np.ndarray] | None = None
        self._handed_out = -1.0
        self.capture_ms: deque[tuple[float, float]] = deque(maxlen=4096)

    def wait(self, timeout_s: float) -> tuple[int, int]:
        """(height, width) of the frames, once the window shows."""
        if self.window is not None:
            r = self.window.wait(timeout_s)
            return r.height, r.width
        assert self.fixed is not None
        return self.fixed.height, self.fixed.width

    def grab(self) -> np.ndarray | None:
        """A fresh frame, or None while the window is not shown."""
        region = self.window.current() if self.window is not None else self.fixed
        if region is None:
            return None
        t0 = time.perf_counter()
        frame = self.capture.grab(region)
        now = time.monotonic()
        self.capture_ms.append((now, (time.perf_counter() - t0) * 1e3))
        with self._lock:
            self._latest = (now, frame)
        return frame

    def recent(self, max_age_s: float) -> np.ndarray | None:
        """For one other consumer (the correction recorder): the agent's latest
        frame if it is younger than ``max_age_s`` and not handed out here before,
        else a fresh one (in lockstep the agent does not step while a human
        drives, and a frame must never be recorded twice)."""
        with self._lock:
            latest = self._latest
        if (
            latest is not None
            and latest[0] != self._handed_out
            and time.monotonic() - latest[0] <= max_age_s
        ):
            self._handed_out = latest[0]
            return latest[1]
        frame = self.grab()
        with self._lock:
            if self._latest is not None:
                self._handed_out = self._latest[0]
        return frame

    def close(self) -> None:
        self.capture.close()
        if self.window is not None:
            self.window.close()


# -- the model agent --------------------------------------------------------------


class ModelAgent:
    """``decide()`` for :class:`~kartplay.agent.AgentLoop`: a fresh frame → the
    policy's pad, timing inference (preprocessing + model + selection) on its own."""

    def __init__(self, policy: Any, feed: FrameFeed, max_fps: float = 0.0) -> None:
        self.policy = policy
        self.feed = feed
        self.period = 1.0 / max_fps if max_fps > 0 else 0.0
        self._next = time.monotonic()
        #: (monotonic time, inference ms) of every step, for the status line.
        self.inference_ms: deque[tuple[float, float]] = deque(maxlen=4096)
        self.steps = 0
        self.no_frame = False

    def __call__(self) -> Pad:
        if self.period:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + self.period, time.monotonic())
        frame = self.feed.grab()
        if frame is None:
            # the window is gone (emulator restarting): a neutral pad stops the
            # kart instead of replaying a stale decision; look again shortly
            self.no_frame = True
            time.sleep(0.05)
            return NEUTRAL
        self.no_frame = False
        t0 = time.perf_counter()
        pad = self.policy.act(frame)
        self.inference_ms.append((time.monotonic(), (time.perf_counter() - t0) * 1e3))
        self.steps += 1
        return pad


def warm_policy(opts: ServeOptions, frame_shape: tuple[int, int]) -> Any:
    """The policy of ``opts.model``, warmed up on one frame of the serving size so
    that the first real poll does not pay for graph tracing."""
    from . import policy as policy_mod

    pol = policy_mod.load(opts.model or "", opts.policy)
    pol.act(np.zeros((*frame_shape, 3), np.uint8))
    pol.reset()
    return pol


# -- the whole server ---------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _since(samples: deque[tuple[float, float]], t: float) -> list[float]:
    return [v for when, v in list(samples) if when >= t]


class Serving:
    """The play server with everything behind it; :meth:`start` / :meth:`close`
    or a context manager."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.feed: FrameFeed | EmulatorFrameFeed | None = None
        self.agent: ModelAgent | None = None
        self.loop: AgentLoop | None = None
        self.override: ManualOverride | None = None
        self.recorder: CorrectionRecorder | None = None
        self._gamepads: list[Any] = []
        self._last_status = (time.monotonic(), 0)
        try:
            self.source = self._build()
            self.server = PadServer(self.source, opts.server)
        except BaseException:
            self._release()
            raise

    def _build(self) -> PadSource:
        opts = self.opts
        if opts.frames == "emulator":
            self.feed = EmulatorFrameFeed(opts.frames_ring)
        elif opts.region or opts.window:
            self.feed = FrameFeed(opts.region, opts.window, opts.display)
        # pads first: a missing gamepad fails before seconds of model loading
        takeover: dict[int, Any] = {}
        players: dict[int, Any] = {}
        if opts.override_pad is not None:
            takeover[AI_CONTROLLER] = self._gamepad(opts.override_pad)
        if opts.human_pad is not None:
            players[HUMAN_CONTROLLER] = self._gamepad(opts.human_pad)
        source: PadSource
        if opts.model:
            assert self.feed is not None
            shape = self.feed.wait(opts.window_wait)
            self.agent = ModelAgent(warm_policy(opts, shape), self.feed, opts.max_fps)
            mailbox = LatestPads()
            self.loop = AgentLoop(
                self.agent,
                controller=AI_CONTROLLER,
                lockstep=opts.server.mode == "lockstep",
                mailbox=mailbox,
            )
            source = mailbox
        else:
            source = replay_pads(list(opts.replay))
        if not takeover and not players:
            return source
        if opts.corrections.out:
            feed = self.feed
            assert feed is not None
            max_age = 1.0 / opts.corrections.fps
            self.recorder = CorrectionRecorder(opts.corrections, lambda: feed.recent(max_age))
        self.override = ManualOverride(
            source,
            takeover=takeover,
            players=players,
            button=opts.override_button,
            recorder=self.recorder,
            on_change=self._announce,
        )
        return self.override

    def _gamepad(self, index: int) -> Any:
        from kartdata.devices.gamepad import Gamepad

        pad = Gamepad(index)
        self._gamepads.append(pad)
        return pad

    def _announce(self, controller: int, human: bool) -> None:
        if self.opts.status:
            who = "OVERRIDE (human)" if human else "AI"
            print(f"controller {controller}: {who}", flush=True)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Serving:
        try:
            if self.override is not None:
                self.override.start()
            self.server.start()
            if self.loop is not None:
                self.loop.start()
        except BaseException:
            self.close()
            raise
        self._last_status = (time.monotonic(), sum(self.server.stats.requests))
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def check(self) -> None:
        """Raise what went wrong in the agent or the correction recorder."""
        for what, err in (
            ("agent", self.loop.error if self.loop else None),
            ("correction recorder", self.recorder.error if self.recorder else None),
        ):
            if err is not None:
                raise err if isinstance(err, KartError) else KartError(f"{what} failed: {err}")

    def controller_state(self, controller: int = AI_CONTROLLER) -> str:
        """``AI``, ``OVERRIDE``, ``HUMAN``, ``REPLAY`` or ``NO WINDOW``."""
        if self.override is not None:
            if controller in self.override.players:
                return "HUMAN"
            if self.override.overriding(controller):
                return "OVERRIDE"
        if self.agent is None:
            return "REPLAY"
        return "NO WINDOW" if self.agent.no_frame else "AI"

    def status_line(self) -> str:
        """Mode, poll and frame rates, inference and capture latency since the
        previous status line, and who drives each controller."""
        now, polls = time.monotonic(), sum(self.server.stats.requests)
        t, last_polls = self._last_status
        self._last_status = (now, polls)
        dt = max(now - t, 1e-9)
        line = f"{self.opts.server.mode}  polls/s {(polls - last_polls) / dt:6.1f}"
        if self.agent is not None:
            infer = _since(self.agent.inference_ms, t)
            assert self.feed is not None
            grab = _since(self.feed.capture_ms, t)
            line += (
                f"  frames/s {len(infer) / dt:5.1f}"
                f"  inference p50 {_percentile(infer, 50):.1f} ms p99 {_percentile(infer, 99):.1f} ms"
                f"  capture p50 {_percentile(grab, 50):.1f} ms"
                f"  steps {self.agent.steps}"
            )
            if isinstance(self.feed, EmulatorFrameFeed):
                age = _since(self.feed.age_ms, t)
                line += f"  frame age p50 {_percentile(age, 50):.1f} ms"
        line += f"  c0 {self.controller_state(AI_CONTROLLER)}"
        if self.override is not None:
            if HUMAN_CONTROLLER in self.override.players:
                line += f"  c1 {self.controller_state(HUMAN_CONTROLLER)}"
            line += f"  takeovers {self.override.takeovers}"
        if self.recorder is not None:
            line += f"  corrections {len(self.recorder.sessions)}"
        return line

    def close(self) -> None:
        self.server.close()
        self._release()

    def _release(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        if self.override is not None:
            self.override.close()  # also ends a correction being written
        for pad in self._gamepads:
            pad.close()
        self._gamepads.clear()
        if self.feed is not None:
            self.feed.close()

    def __enter__(self) -> Serving:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(opts: ServeOptions) -> None:
    """The CLI: serve until Ctrl-C or SIGTERM, a status line every interval."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with Serving(opts) as s:
        host, port = s.address
        print(
            f"kartplay serve: {opts.server.mode} on http://{host}:{port}/ (Ctrl-C to stop)",
            flush=True,
        )
        try:
            while not done.wait(opts.status_interval):
                s.check()
                if opts.status:
                    print(s.status_line(), flush=True)
        except KeyboardInterrupt:
            pass
        s.check()
    if s.recorder is not None and s.recorder.sessions:
        print(f"corrections written: {', '.join(str(p) for p in s.recorder.sessions)}", flush=True)
