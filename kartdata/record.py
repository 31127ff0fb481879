"""The recorder: screen region + human input → native sessions, at a fixed rate, crash-safe.

One loop paces every player against absolute deadlines ``t0 + k / fps`` on the
monotonic clock, so lateness never accumulates; a deadline that passes before
its frame could be taken is a dropped frame, counted and reported, never
hidden. Each frame is grabbed in the loop and handed through a bounded queue to
a writer thread per player that encodes it and appends it with
:class:`~kartdata.sources.native.SessionWriter` (image first, then one row), so
a recorder killed at any moment leaves a readable session holding every frame
it had written. If encoding falls behind, the queue fills, the loop misses
deadlines and the drops show in the status line.

Hotkeys (pressed on the pad or the keyboard): ``record`` starts and stops a
take (each take is its own session), ``pause`` holds the take without ending it,
``recovery`` marks the start and then the end of a recovery segment (the frames
between carry the ``recovery`` tag), ``discard`` drops the last
``discard_s`` seconds, ``quit`` ends the recording.
"""

from __future__ import annotations

import json
import math
import queue
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.devices.capture import Region, ScreenCapture
from kartdata.devices.controls import Controls, HotkeyEdges, InputSource
from kartdata.errors import KartError
from kartdata.schema import IMAGE_FORMATS, RECOVERY_TAG, Pad, SessionMeta
from kartdata.sources.native import SessionWriter, encode_image

#: Written next to session.json when a take ends cleanly: what the recorder saw.
STATS_FILE = "recording.json"


class RecorderError(KartError):
    """The recorder cannot run as asked (bad settings, disk trouble, …)."""


@dataclass(frozen=True, slots=True)
class Player:
    """One player: where their view is on screen and what they hold.

    ``region`` is called every frame (a :class:`~kartdata.devices.capture.WindowRegion`'s
    ``current`` follows a moving window); it returns None while there is nothing
    to capture. ``size`` is the capture size, fixed for the whole recording.
    """

    name: str
    region: Callable[[], Region | None]
    size: tuple[int, int]
    input: InputSource


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    out: Path
    fps: float = 15.0
    game: str = "unknown"
    track: str = "unknown"
    image_format: str = "png"
    #: How much the ``discard`` hotkey drops.
    discard_s: float = 5.0
    #: False: wait for the ``record`` hotkey before the first take.
    start_recording: bool = True
    #: Stop after this many frames (per player) or seconds; None: until quit.
    max_frames: int | None = None
    max_seconds: float | None = None
    #: Frames waiting to be encoded, per player (640x480 RGB is 0.9 MB each).
    queue_frames: int = 32
    #: fsync the controls table every N rows (0: never; the OS flushes anyway,
    #: and a kill -9 of the recorder alone loses nothing already written).
    fsync_every: int = 0
    status_every_s: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise RecorderError(f"fps {self.fps} is not a positive number")
        if self.image_format not in IMAGE_FORMATS:
            raise RecorderError(f"image format {self.image_format!r} not in {IMAGE_FORMATS}")
        if self.discard_s < 0:
            raise RecorderError(f"discard seconds {self.discard_s} is negative")


@dataclass(slots=True)
class RecorderStats:
    """Figures for one player (or the whole run in :attr:`Recorder.stats`)."""

    frames: int = 0
    dropped: int = 0
    discarded: int = 0
    elapsed_s: float = 0.0
    achieved_fps: float = 0.0
    #: Capture time minus deadline, milliseconds.
    late_ms_p50: float = 0.0
    late_ms_p99: float = 0.0
    #: Spread of the intervals between consecutive captured frames, ms.
    interval_ms_std: float = 0.0
    bytes_written: int = 0
    sessions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Item:
    kind: str  # frame | discard | close
    image: np.ndarray | None = None
    pad: Pad | None = None
    t_ns: int = 0
    tags: tuple[str, ...] = ()
    count: int = 0
    path: Path | None = None
    meta: SessionMeta | None = None
    stats: dict[str, Any] | None = None


class _Sink:
    """A player's writer thread: encodes queued frames and appends them to the
    current take's session."""

    def __init__(self, maxsize: int, fsync_every: int) -> None:
        self.q: queue.Queue[_Item] = queue.Queue(maxsize=maxsize)
        self.writer: SessionWriter | None = None
        self.error: BaseException | None = None
        self.written = 0
        self.discarded = 0
        self.bytes = 0
        self._take_discarded = 0
        self._take_bytes = 0
        self.fsync_every = fsync_every
        self._t = threading.Thread(target=self._run, name="kart-record-writer", daemon=True)
        self._t.start()

    def open(self, path: Path, meta: SessionMeta) -> None:
        self.q.put(_Item("open", path=path, meta=meta))

    def _run(self) -> None:
        while True:
            item = self.q.get()
            try:
                if item.kind == "stop":
                    if self.writer is not None:
                        self.writer.close()
                    return
                if self.error is not None:
                    continue
                self._handle(item)
            except BaseException as e:  # surfaced by the loop as a RecorderError
                self.error = e
            finally:
                self.q.task_done()

    def _handle(self, item: _Item) -> None:
        if item.kind == "open":
            assert item.path is not None and item.meta is not None
            self.writer = SessionWriter(item.path, item.meta, fsync_every=self.fsync_every)
            self._take_discarded = self._take_bytes = 0
        elif item.kind == "frame" and self.writer is not None:
            assert item.image is not None and item.pad is not None
            data = encode_image(item.image, self.writer.meta.image_format)
            self.writer.write(data, item.pad, t_ns=item.t_ns, tags=item.tags)
            self.written += 1
            self.bytes += len(data)
            self._take_bytes += len(data)
        elif item.kind == "discard" and self.writer is not None:
            n = self.writer.discard_last(item.count)
            self.written -= n
            self.discarded += n
            self._take_discarded += n
        elif item.kind == "close" and self.writer is not None:
            self.writer.close()
            stats = {
                **(item.stats or {}),
                "frames": self.writer.frames_written,
                "discarded": self._take_discarded,
                "bytes_written": self._take_bytes,
            }
            (self.writer.path / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
            self.writer = None

    def put(self, item: _Item) -> None:
        self.q.put(item)

    def finish(self) -> None:
        self.q.put(_Item("stop"))
        self._t.join()


@dataclass(slots=True)
class _PlayerState:
    player: Player
    sink: _Sink
    edges: HotkeyEdges = field(default_factory=HotkeyEdges)
    last: Controls = field(default_factory=Controls)
    recovery: bool = False
    take: int = 0
    session: Path | None = None
    take_frames: int = 0
    frames: int = 0
    dropped: int = 0
    dropped_before_take: int = 0
    late_ns: list[int] = field(default_factory=list)
    t_ns: list[int] = field(default_factory=list)
    missing_region: bool = False


class Recorder:
    """Records ``players`` into sessions under ``config.out``.

    Takes are named ``<player>-<NNN>`` (the next free number), so re-running
    into the same directory never touches earlier recordings.
    """

    def __init__(
        self,
        config: RecorderConfig,
        players: Sequence[Player],
        capture: ScreenCapture,
        *,
        status: Callable[[str], None] | None = None,
    ) -> None:
        if not players:
            raise RecorderError("no players to record")
        names = [p.name for p in players]
        if len(set(names)) != len(names):
            raise RecorderError(f"player names must differ, got {names}")
        self.config = config
        self.capture = capture
        self.status = status
        self.players = [
            _PlayerState(p, _Sink(config.queue_frames, config.fsync_every)) for p in players
        ]
        self.recording = False
        self.paused = False
        self.stats: dict[str, RecorderStats] = {}

    # -- takes ---------------------------------------------------------------

    def _next_take(self, name: str) -> Path:
        self.config.out.mkdir(parents=True, exist_ok=True)
        n = 1
        while (self.config.out / f"{name}-{n:03d}").exists():
            n += 1
        return self.config.out / f"{name}-{n:03d}"

    def _start(self) -> None:
        c = self.config
        for ps in self.players:
            path = self._next_take(ps.player.name)
            path.mkdir(parents=True)  # claims the name before the writer thread opens it
            meta = SessionMeta(
                game=c.game,
                track=c.track,
                player=ps.player.name,
                width=ps.player.size[0],
                height=ps.player.size[1],
                fps=c.fps,
                image_format=c.image_format,
                extra={"recorder": "kartdata record", **c.extra},
            )
            ps.sink.open(path, meta)
            ps.session, ps.take_frames, ps.recovery = path, 0, False
            ps.late_ns, ps.t_ns = [], []
            ps.dropped_before_take = ps.dropped
            ps.take += 1
        self.recording, self.paused = True, False

    def _stop(self, elapsed_s: float) -> None:
        for ps in self.players:
            if ps.session is None:
                continue
            st = self._player_stats(ps, elapsed_s)
            st.dropped -= ps.dropped_before_take
            self.stats.setdefault(ps.player.name, RecorderStats()).sessions.append(str(ps.session))
            ps.sink.put(_Item("close", stats=asdict(st)))
            ps.session = None
        self.recording = False

    def _player_stats(self, ps: _PlayerState, elapsed_s: float) -> RecorderStats:
        late = sorted(ps.late_ns)
        gaps = [b - a for a, b in zip(ps.t_ns, ps.t_ns[1:], strict=False)]
        return RecorderStats(
            frames=ps.sink.written,
            dropped=ps.dropped,
            discarded=ps.sink.discarded,
            elapsed_s=elapsed_s,
            achieved_fps=(len(ps.t_ns) - 1) / ((ps.t_ns[-1] - ps.t_ns[0]) / 1e9)
            if len(ps.t_ns) > 1 and ps.t_ns[-1] > ps.t_ns[0]
            else 0.0,
            late_ms_p50=late[len(late) // 2] / 1e6 if late else 0.0,
            late_ms_p99=late[min(len(late) - 1, int(len(late) * 0.99))] / 1e6 if late else 0.0,
            interval_ms_std=statistics.pstdev(gaps) / 1e6 if len(gaps) > 1 else 0.0,
            bytes_written=ps.sink.bytes,
        )

    # -- hotkeys -------------------------------------------------------------

    def _hotkeys(self, elapsed_s: float) -> bool:
        """Read every player's input and act on new presses; False on quit."""
        for ps in self.players:
            ps.last = ps.player.input.read()
            pressed = ps.edges.update(ps.last.hotkeys)
            if "quit" in pressed:
                return False
            if "record" in pressed:
                if self.recording:
                    self._stop(elapsed_s)
                else:
                    self._start()
            if "pause" in pressed and self.recording:
                self.paused = not self.paused
            if "recovery" in pressed and self.recording:
                ps.recovery = not ps.recovery
            if "discard" in pressed and self.recording and ps.session is not None:
                ps.sink.put(_Item("discard", count=round(self.config.discard_s * self.config.fps)))
        return True

    # -- the loop ------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> dict[str, RecorderStats]:
        """Record until quit, ``stop`` is set, Ctrl-C, or a configured limit."""
        c = self.config
        period_ns = round(1e9 / c.fps)
        screen = self.capture.screen()
        t0 = time.monotonic_ns()
        k = 0
        next_status = t0
        if c.start_recording:
            self._start()
        try:
            while stop is None or not stop.is_set():
                deadline = t0 + k * period_ns
                now = time.monotonic_ns()
                if now < deadline:
                    time.sleep((deadline - now) / 1e9)  # pacing, not synchronisation
                elif now - deadline >= period_ns:
                    missed = (now - deadline) // period_ns
                    if self.recording and not self.paused:
                        for ps in self.players:
                            ps.dropped += missed
                    k += missed
                    deadline += missed * period_ns
                elapsed = (time.monotonic_ns() - t0) / 1e9
                if not self._hotkeys(elapsed):
                    break
                if self.recording and not self.paused:
                    self._capture_all(deadline, screen)
                k += 1
                self._check_sinks()
                if self.status is not None and time.monotonic_ns() >= next_status:
                    self.status(self.status_line())
                    next_status = time.monotonic_ns() + round(c.status_every_s * 1e9)
                if c.max_seconds is not None and elapsed >= c.max_seconds:
                    break
                if c.max_frames is not None and all(
                    ps.take_frames >= c.max_frames for ps in self.players
                ):
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the recording like quit: close the take properly
        finally:
            elapsed = (time.monotonic_ns() - t0) / 1e9
            if self.recording:
                self._stop(elapsed)
            for ps in self.players:
                ps.sink.finish()
                ps.player.input.close()
        self._check_sinks()
        for ps in self.players:
            st = self._player_stats(ps, elapsed)
            st.sessions = self.stats.get(ps.player.name, RecorderStats()).sessions
            self.stats[ps.player.name] = st
        return self.stats

    def _capture_all(self, deadline: int, screen: Region) -> None:
        for ps in self.players:
            r = ps.player.region()
            if r is None:
                ps.missing_region = True
                ps.dropped += 1
                continue
            ps.missing_region = False
            w, h = ps.player.size
            r = replace(r, width=w, height=h).clamped(screen)
            t_ns = time.monotonic_ns()
            image = self.capture.grab(r)
            tags = (RECOVERY_TAG,) if ps.recovery else ()
            ps.sink.put(_Item("frame", image=image, pad=ps.last.pad, t_ns=t_ns, tags=tags))
            ps.late_ns.append(t_ns - deadline)
            ps.t_ns.append(t_ns)
            ps.frames += 1
            ps.take_frames += 1

    def _check_sinks(self) -> None:
        for ps in self.players:
            if ps.sink.error is not None:
                e = ps.sink.error
                where = ps.session or self.config.out
                raise RecorderError(f"{where}: writing failed: {e}") from None

    def status_line(self) -> str:
        state = "PAUSED" if self.paused else ("REC" if self.recording else "idle")
        parts = [state]
        for ps in self.players:
            pad = ps.last.pad
            buttons = ",".join(sorted(pad.buttons)) or "-"
            rate = 0.0
            if len(ps.t_ns) > 1:
                window = ps.t_ns[-min(len(ps.t_ns), round(self.config.fps * 2)) :]
                span = (window[-1] - window[0]) / 1e9
                rate = (len(window) - 1) / span if span > 0 else 0.0
            name = ps.session.name if ps.session is not None else ps.player.name
            flags = (" RECOVERY" if ps.recovery else "") + (
                " NO-WINDOW" if ps.missing_region else ""
            )
            parts.append(
                f"{name}: {ps.sink.written} frames {rate:.1f} fps dropped {ps.dropped} "
                f"x={pad.x:+.2f} y={pad.y:+.2f} [{buttons}] "
                f"{ps.sink.bytes / 1e6:.1f} MB{flags}"
            )
        return " | ".join(parts)


# ---------------------------------------------------------------------------
# Wiring for the CLI (and notebooks): where to capture, whose input
# ---------------------------------------------------------------------------


def make_players(
    *,
    window: str | None = None,
    region: Region | None = None,
    pads: Sequence[int] = (),
    keyboard: bool = False,
    names: Sequence[str] = (),
    display: str | None = None,
    mapping_file: Path | None = None,
    keymap_file: Path | None = None,
    window_timeout_s: float = 10.0,
) -> list[Player]:
    """Players for ``kartdata record``: one per pad (or one on the keyboard); with
    two players the capture area is split into side-by-side halves."""
    from kartdata.devices.capture import WindowRegion
    from kartdata.devices.gamepad import DEFAULT_PAD_MAPPING, Gamepad, PadMapping
    from kartdata.devices.keyboard import Keyboard
    from kartdata.devices.keymap import KeyMap

    if (window is None) == (region is None):
        raise RecorderError("give exactly one of --window TITLE or --region X,Y,W,H")
    if keyboard and pads:
        raise RecorderError("give --pad N (once per player) or --keyboard, not both")
    inputs: list[InputSource]
    if keyboard or not pads:
        km = KeyMap.load(keymap_file) if keymap_file else KeyMap()
        inputs = [Keyboard(display, km)]
    else:
        pm = PadMapping.load(mapping_file) if mapping_file else DEFAULT_PAD_MAPPING
        inputs = [Gamepad(i, pm) for i in pads]
    n = len(inputs)
    if n > 2:
        raise RecorderError(f"{n} pads: the recorder handles one or two players")
    names = list(names) or ([f"p{i + 1}" for i in range(n)] if n > 1 else ["player"])
    if len(names) != n:
        raise RecorderError(f"{len(names)} --player name(s) for {n} player(s)")

    if window is not None:
        tracker = WindowRegion(window, display)
        whole = tracker.wait(window_timeout_s)
        follow: Callable[[], Region | None] = tracker.current
    else:
        assert region is not None
        whole = region

        def follow() -> Region | None:
            return region

    if n == 1:
        return [Player(names[0], follow, (whole.width, whole.height), inputs[0])]

    halves = whole.split(2)

    def half(i: int) -> Callable[[], Region | None]:
        def current() -> Region | None:
            r = follow()
            return None if r is None else r.split(2)[i]

        return current

    return [
        Player(names[i], half(i), (halves[i].width, halves[i].height), inputs[i]) for i in range(n)
    ]
