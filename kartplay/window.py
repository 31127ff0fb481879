"""``kartplay drive-window``: a model plays any windowed game through a
virtual keyboard or gamepad.

The loop, once per policy step::

    window capture (WindowRegion) → kartplay.policy (the plugin path's
    preprocessing and action selection) → keys (pulse-width steering,
    kartplay.keys) on the virtual keyboard, or the pad on the virtual gamepad

A human takes over by holding a button of a real pad (``override_pad``) or a key
(``override_key``), as on the plugin path (:class:`~kartplay.override.ManualOverride`);
each takeover can be written as a correction session. While the human drives,
the AI holds nothing: a keyboard player's own keys reach the game directly, a
pad player's pad is passed through to the virtual gamepad.

Keys are released on every way out: the end of the loop, an exception, Ctrl-C,
SIGTERM (:func:`drive_window` turns it into a stop), the window closing; a
guard process releases them when the process is killed outright
(:mod:`kartdata.devices.key_guard`); the kernel drops a uinput pad with its
process.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from kartdata.devices.capture import Region, ScreenCapture, WindowRegion
from kartdata.devices.keymap import KeyMap
from kartdata.errors import KartError
from kartdata.schema import Pad

from .keys import PadKeys, PulseConfig
from .override import (
    DEFAULT_OVERRIDE_BUTTON,
    CorrectionConfig,
    CorrectionRecorder,
    ManualOverride,
)
from .policy import Policy, PolicyConfig
from .rescue import RescueConfig, StillView

Device = Literal["keyboard", "gamepad"]
DEVICES: tuple[str, ...] = ("keyboard", "gamepad")
#: The window gone this long (s) ends the drive; shorter gaps (a remap, a
#: mode switch) only release the keys.
DEFAULT_WINDOW_LOST_S = 2.0


class DriveWindowError(KartError):
    """The drive loop cannot run as asked."""


@dataclass(frozen=True, slots=True)
class DriveWindowConfig:
    """Everything ``kartplay drive-window`` takes, checked once here."""

    #: An exported model directory (``kartmodel export``).
    model: str
    #: The game's window: a part of its title.
    window: str
    #: Key map file (the recorder's shape); None: the default key map.
    keymap: Path | None = None
    device: Device = "keyboard"
    display: str | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    pulse: PulseConfig = field(default_factory=PulseConfig)
    #: Most policy steps a second (0: as fast as capture and model go).
    max_fps: float = 0.0
    window_wait_s: float = 10.0
    window_lost_s: float = DEFAULT_WINDOW_LOST_S
    #: A real pad (SDL index) that takes over while ``override_button`` is held.
    override_pad: int | None = None
    override_button: str | int = DEFAULT_OVERRIDE_BUTTON
    #: Or a key (X keysym name) that takes over while held.
    override_key: str | None = None
    #: Every takeover written as a native session (tagged recovery).
    corrections: CorrectionConfig = field(default_factory=CorrectionConfig)
    #: The game's rescue button, pressed when the view stands still.
    rescue: RescueConfig = field(default_factory=RescueConfig)
    status_interval_s: float = 1.0
    #: Stop after this long (None: until Ctrl-C, SIGTERM or the window closes).
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise DriveWindowError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if not self.window:
            raise DriveWindowError("give the game's window title (--window)")
        if self.override_pad is not None and self.override_key is not None:
            raise DriveWindowError("give --override-pad or --override-key, not both")
        if self.corrections.out is not None and (
            self.override_pad is None and self.override_key is None
        ):
            raise DriveWindowError(
                "--record-corrections records takeovers: give --override-pad or --override-key"
            )
        for name, v in (("max fps", self.max_fps), ("window wait", self.window_wait_s),
                        ("window lost", self.window_lost_s)):  # fmt: skip
            if not (v >= 0 and math.isfinite(v)):
                raise DriveWindowError(f"{name} {v} is not a number ≥ 0")
        if self.status_interval_s <= 0:
            raise DriveWindowError("status interval must be positive")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise DriveWindowError(f"max seconds {self.max_seconds} is not positive")


@dataclass(slots=True)
class DriveStats:
    """What a drive did. Latencies: capture start → keys (or pad) sent, ms."""

    steps: int = 0
    elapsed_s: float = 0.0
    policy_fps: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    #: The parts: window lookup + grab, policy (preprocessing, model, selection),
    #: keys (pulses + XTEST, or the uinput write) — the last is what the loop adds.
    capture_ms_p50: float = 0.0
    infer_ms_p50: float = 0.0
    keys_ms_p50: float = 0.0
    keys_ms_p99: float = 0.0
    takeovers: int = 0
    corrections: list[str] = field(default_factory=list)
    #: Times the rescue button was pressed.
    rescues: int = 0
    #: Why it ended: "stopped", "interrupted", "time", "window closed".
    ended: str = "stopped"


class Actuator(Protocol):
    """The virtual device the pads are played on."""

    def apply(self, pad: Pad, now: float) -> None: ...

    def held(self) -> str: ...

    def release_all(self) -> None: ...

    def close(self) -> None: ...


class KeyboardActuator:
    """Pads → pulse-width modulated keys on a virtual keyboard."""

    def __init__(self, display: str | None, keymap: KeyMap, pulse: PulseConfig) -> None:
        from kartdata.devices.virtual_keyboard import VirtualKeyboard

        self.keyboard = VirtualKeyboard(display, keymap)
        self.keys = PadKeys(keymap, pulse)

    def apply(self, pad: Pad, now: float) -> None:
        self.keyboard.set_held(self.keys.keys(pad, now))

    def held(self) -> str:
        return " ".join(sorted(self.keyboard.held)) or "-"

    def release_all(self) -> None:
        self.keyboard.release_all()
        self.keys.reset()

    def close(self) -> None:
        self.keyboard.close()


class GamepadActuator:
    """Pads played as they are (analog) on a uinput virtual gamepad."""

    def __init__(self) -> None:
        from kartdata.devices.virtual_gamepad import VirtualGamepad

        self.pad = VirtualGamepad()

    def apply(self, pad: Pad, now: float) -> None:
        self.pad.set_pad(pad)

    def held(self) -> str:
        p = self.pad.pad
        return f"x={p.x:+.2f} y={p.y:+.2f} [{','.join(sorted(p.buttons)) or '-'}]"

    def release_all(self) -> None:
        self.pad.release_all()

    def close(self) -> None:
        self.pad.close()


class _NoAIPads:
    """ManualOverride wraps a pad source; here the loop itself is the AI."""

    def latest(self, controller: int) -> Pad:
        return Pad()

    def step(self, controller: int, timeout: float) -> Pad | None:
        return None


class WindowDriver:
    """The drive loop, built from a :class:`DriveWindowConfig`. Opens what is
    cheap and likely to be wrong first (key map, display, window, devices),
    the model last. ``policy`` replaces loading ``config.model``."""

    def __init__(
        self,
        config: DriveWindowConfig,
        *,
        policy: Policy | None = None,
        status: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.status = status
        self._closers: list[Callable[[], None]] = []
        self.actuator: Actuator | None = None
        self.override: ManualOverride | None = None
        self.recorder: CorrectionRecorder | None = None
        self.rescue = StillView(config.rescue) if config.rescue.button is not None else None
        self._latest: np.ndarray | None = None
        self._latest_lock = threading.Lock()
        self._lat: deque[float] = deque(maxlen=4096)
        self._cap: deque[float] = deque(maxlen=4096)
        self._inf: deque[float] = deque(maxlen=4096)
        self._keys: deque[float] = deque(maxlen=4096)
        self._steps_t: deque[float] = deque(maxlen=256)
        try:
            self._open(policy)
        except BaseException:
            self.close()
            raise

    def _open(self, policy: Policy | None) -> None:
        c = self.config
        keymap = KeyMap.load(c.keymap) if c.keymap is not None else KeyMap()
        if c.override_key is not None and c.override_key in keymap.key_names():
            raise DriveWindowError(f"override key {c.override_key!r} is also in the key map")
        self.capture = ScreenCapture(c.display)
        self._closers.append(self.capture.close)
        self.tracker = WindowRegion(c.window, c.display)
        self._closers.append(self.tracker.close)
        first = self.tracker.wait(c.window_wait_s)
        self.size = (first.width, first.height)
        self.screen = self.capture.screen()
        human: Any = None
        if c.override_pad is not None:
            from kartdata.devices.gamepad import Gamepad

            human = Gamepad(c.override_pad)
            self._closers.append(human.close)
        elif c.override_key is not None:
            from kartdata.devices.keyboard import Keyboard

            human = Keyboard(c.display, keymap)
            human.button(c.override_key)  # a key this keyboard has, or a one-line error now
            self._closers.append(human.close)
        if c.device == "keyboard":
            self.actuator = KeyboardActuator(c.display, keymap, c.pulse)
        else:
            self.actuator = GamepadActuator()
        self.policy = policy if policy is not None else _load_policy(c.model, c.policy)
        # the first call builds the model's graph (seconds): not in the first step,
        # nor in the latency figures
        self.policy.act(self._grab(first))
        self.policy.reset()
        if human is not None:
            if c.corrections.out is not None:
                self.recorder = CorrectionRecorder(c.corrections, self._frame)
            button = c.override_key if c.override_key is not None else c.override_button
            self.override = ManualOverride(
                _NoAIPads(), takeover={0: human}, button=button, recorder=self.recorder
            )

    def _frame(self) -> np.ndarray | None:
        with self._latest_lock:
            return self._latest

    # -- the loop --------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> DriveStats:
        c = self.config
        assert self.actuator is not None
        stop = stop or threading.Event()
        act = self.actuator
        period = 1.0 / c.max_fps if c.max_fps > 0 else 0.0
        t0 = time.monotonic()
        next_status = t0 + c.status_interval_s
        lost_since: float | None = None
        overriding = False
        steps = 0
        ended = "stopped"
        if self.override is not None:
            self.override.start()
        try:
            while not stop.is_set():
                t_start = time.perf_counter()
                now = time.monotonic()
                if c.max_seconds is not None and now - t0 >= c.max_seconds:
                    ended = "time"
                    break
                region = self.tracker.current()
                if region is None:
                    act.release_all()
                    lost_since = lost_since if lost_since is not None else now
                    if now - lost_since >= c.window_lost_s:
                        ended = "window closed"
                        break
                    stop.wait(0.02)
                    continue
                lost_since = None
                frame = self._grab(region)
                t_cap = time.perf_counter()
                with self._latest_lock:
                    self._latest = frame
                human = self.override is not None and self.override.overriding(0)
                if human:
                    if not overriding:
                        act.release_all()
                        overriding = True
                        if self.rescue is not None:
                            self.rescue.reset()
                    pad = self.override.human_pad(0) if self.override is not None else None
                    if isinstance(act, GamepadActuator) and pad is not None:
                        act.apply(pad, now)  # a keyboard player's keys reach the game directly
                else:
                    overriding = False
                    pad = self.policy.act(frame)
                    if self.rescue is not None and self.rescue.update(frame, now):
                        pad = Pad(pad.x, pad.y, pad.buttons | {str(c.rescue.button)})
                    t_inf = time.perf_counter()
                    act.apply(pad, time.monotonic())
                    t_key = time.perf_counter()
                    self._cap.append((t_cap - t_start) * 1e3)
                    self._inf.append((t_inf - t_cap) * 1e3)
                    self._keys.append((t_key - t_inf) * 1e3)
                    self._lat.append((t_key - t_start) * 1e3)
                    self._steps_t.append(t_key)
                    steps += 1
                if self.status is not None and time.monotonic() >= next_status:
                    self.status(self.status_line())
                    next_status = time.monotonic() + c.status_interval_s
                # while a human drives only frames are taken: at most 60 a second
                pace = period or (1 / 60 if human else 0.0)
                if pace:
                    delay = pace - (time.perf_counter() - t_start)
                    if delay > 0:
                        stop.wait(delay)
        except KeyboardInterrupt:
            ended = "interrupted"  # Ctrl-C ends the drive like a stop; keys released below
        finally:
            act.release_all()
            if self.override is not None:
                self.override.close()
        if self.recorder is not None and self.recorder.error is not None:
            raise DriveWindowError(f"correction recording failed: {self.recorder.error}")
        return self._stats(steps, time.monotonic() - t0, ended)

    def _grab(self, region: Region) -> np.ndarray:
        # the size found first, kept inside the screen: every frame one shape
        w, h = self.size
        return self.capture.grab(Region(region.x, region.y, w, h).clamped(self.screen))

    def policy_fps(self) -> float:
        t = list(self._steps_t)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def status_line(self) -> str:
        lat = sorted(self._lat)
        p50 = lat[len(lat) // 2] if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
        who = "HUMAN" if self.override is not None and self.override.overriding(0) else "AI"
        held = self.actuator.held() if self.actuator is not None else "-"
        return (
            f"{who} | policy {self.policy_fps():.1f} fps | capture→keys p50 {p50:.1f} ms "
            f"p99 {p99:.1f} ms | held: {held}"
        )

    def _stats(self, steps: int, elapsed: float, ended: str) -> DriveStats:
        def pct(xs: deque[float], q: float) -> float:
            s = sorted(xs)
            return s[min(len(s) - 1, int(len(s) * q))] if s else 0.0

        return DriveStats(
            steps=steps,
            elapsed_s=elapsed,
            policy_fps=self.policy_fps(),
            latency_ms_p50=pct(self._lat, 0.5),
            latency_ms_p99=pct(self._lat, 0.99),
            capture_ms_p50=pct(self._cap, 0.5),
            infer_ms_p50=pct(self._inf, 0.5),
            keys_ms_p50=pct(self._keys, 0.5),
            keys_ms_p99=pct(self._keys, 0.99),
            takeovers=self.override.takeovers if self.override is not None else 0,
            corrections=[str(p) for p in self.recorder.sessions] if self.recorder else [],
            rescues=self.rescue.rescues if self.rescue is not None else 0,
            ended=ended,
        )

    def close(self) -> None:
        """Release and close everything (idempotent); the keys first."""
        if self.actuator is not None:
            try:
                self.actuator.close()
            finally:
                self.actuator = None
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> WindowDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_policy(model: str, config: PolicyConfig) -> Policy:
    from kartplay.policy import load

    return load(model, config)


def drive_window(
    config: DriveWindowConfig,
    *,
    policy: Policy | None = None,
    status: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> DriveStats:
    """Drive until Ctrl-C, SIGTERM, ``stop``, ``max_seconds`` or the window
    closing; every key is released before it returns or raises. Called from
    the main thread, Ctrl-C and SIGTERM become a stop (and the previous
    handlers are put back after)."""
    stop = stop or threading.Event()
    interrupted = threading.Event()

    def on_sigint(*_: object) -> None:
        # Ctrl-C ends the loop between two steps, as a stop, not at whatever
        # line the KeyboardInterrupt would land on (a TensorFlow call, a key
        # sent halfway); a second Ctrl-C stops waiting (a model still loading).
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_sigint)
    try:
        with WindowDriver(config, policy=policy, status=status) as driver:
            stats = driver.run(stop)
        if interrupted.is_set() and stats.ended == "stopped":
            stats.ended = "interrupted"
        return stats
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
