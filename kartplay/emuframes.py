"""Frames straight from the emulator: the reader of the plugin's frame ring.

The kartbot plugin (``plugin/src/frames.h``, turned on by ``KARTBOT_FRAMES`` or
the ``Input-Bot-Frames`` config section) publishes, at each pad poll of the
game, the frame the VI shows (taken out of RDRAM), its frame number and the pad
word the game read for it, into a ring file in /dev/shm. Nothing here can make
the emulator wait: the plugin always overwrites the oldest slot, and a reader
that falls a whole ring behind loses frames and counts them (:attr:`FrameRing.lost`).

Three consumers build on :class:`FrameRing`:

- :class:`EmulatorFrameFeed`: ``kartplay serve --frames emulator`` feeds the
  policy the emulator's own frames (RGB at the game's resolution) instead of a
  screen region; in lockstep the agent acts on exactly the frame of the poll it
  answers;
- :func:`record`: every frame (or every k-th) written into a native session
  with the exact pad the game read for it, while the human's pad is served to
  the plugin;
- ``benchmarks/emuframes.py``: the publish cost and the frame age.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.errors import KartError
from kartdata.schema import IMAGE_FORMATS, Pad, SessionMeta

from .agent import LatestPads
from .pad import from_word
from .protocol import PadServer, ServerConfig

#: Where the plugin's ring lives unless configured otherwise (KARTBOT_FRAMES).
DEFAULT_RING_PATH = "/dev/shm/kartbot-frames"

MAGIC = b"KBFRAMES"
VERSION = 1
STATE_OPEN = 1
STATE_CLOSED = 2
SLOT_HEADER_BYTES = 64
#: The N64's field rate (NTSC): one pad poll, one frame.
EMULATOR_FPS = 60.0

# The header and slot layouts of plugin/src/frames.h.
_HEADER = struct.Struct("<8sIIIIII QQ")
_SLOT = struct.Struct("<QQQQ IIIIIIII")
_PUBLISHED_AT = 32
_STATE_AT = 28
_PAD_KNOWN = 1

#: How often a waiting reader looks at the ring again (the plugin cannot wake it).
POLL_S = 0.0005


class FrameRingError(KartError):
    """The ring file is missing, not a frame ring, or of another version."""


@dataclass(frozen=True, slots=True)
class EmuFrame:
    """One frame as the VI showed it."""

    #: Position in the ring's sequence (0, 1, 2, ... with no gaps).
    index: int
    #: The frame number: pad polls of the game since the ROM opened.
    frame: int
    #: ``BUTTONS.Value`` the game read for this frame, None while the agent
    #: has not answered yet (lockstep).
    pad_word: int | None
    #: CLOCK_MONOTONIC (same clock as :func:`time.monotonic_ns`) when taken.
    t_ns: int
    width: int
    height: int
    #: 16 (RGBA5551) or 32 (RGBA8888).
    bits: int
    #: Physical RDRAM address of the frame buffer (VI_ORIGIN).
    origin: int
    #: What taking the frame cost inside GetKeys.
    publish_ns: int
    #: The frame buffer's words as RDRAM holds them (host-order 32-bit).
    words: np.ndarray = field(repr=False)

    @property
    def rgb(self) -> np.ndarray:
        """(height, width, 3) uint8."""
        return to_rgb(self.words, self.width, self.height, self.bits)

    @property
    def pad(self) -> Pad:
        if self.pad_word is None:
            raise FrameRingError(f"frame {self.frame}: its pad is not known yet")
        return from_word(self.pad_word)


def _rgba5551_table() -> np.ndarray:
    p = np.arange(1 << 16, dtype=np.uint32)
    five = np.stack([(p >> 11) & 31, (p >> 6) & 31, (p >> 1) & 31], axis=-1)
    return ((five << 3) | (five >> 2)).astype(np.uint8)


_RGBA5551 = _rgba5551_table()


def to_rgb(words: np.ndarray, width: int, height: int, bits: int) -> np.ndarray:
    """A frame buffer as RDRAM holds it (host-order 32-bit words of the
    big-endian image) → (height, width, 3) uint8 RGB.

    16-bit pixels are RGBA5551, two to a word, the first in the high half;
    5-bit channels widen as ``v << 3 | v >> 2`` (0 → 0, 31 → 255). 32-bit
    pixels are RGBA8888, R in the high byte. Alpha is dropped."""
    n = width * height
    if bits == 16:
        if words.size * 2 < n:
            raise FrameRingError(f"{words.size} words cannot hold {width}x{height} 16-bit pixels")
        pixels = np.empty(words.size * 2, np.uint16)
        pixels[0::2] = words >> 16
        pixels[1::2] = words & 0xFFFF
        return _RGBA5551[pixels[:n]].reshape(height, width, 3)
    if bits == 32:
        if words.size < n:
            raise FrameRingError(f"{words.size} words cannot hold {width}x{height} 32-bit pixels")
        # little-endian host: a word's bytes are A, B, G, R
        return words[:n].view(np.uint8).reshape(height, width, 4)[:, :, 3:0:-1]
    raise FrameRingError(f"frame buffer of {bits} bits per pixel (16 or 32 expected)")


class FrameRing:
    """A reader's view of the plugin's ring; use as a context manager.

    :meth:`next` hands out every frame in order (the recorder); :meth:`latest`
    the newest one (the policy). Both count in :attr:`lost` the frames the
    plugin overwrote before this reader got to them.
    """

    def __init__(self, path: str | Path = DEFAULT_RING_PATH, *, wait_s: float = 0.0) -> None:
        self.path = Path(path)
        self._mm: mmap.mmap | None = None
        self._inode = -1
        self.lost = 0
        self.received = 0
        self._cursor = 0
        self._pid = 0
        self._attach(wait_s)

    # -- mapping ---------------------------------------------------------------

    def _attach(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            err = self._try_attach()
            if err is None:
                return
            if time.monotonic() >= deadline:
                raise FrameRingError(f"{self.path}: {err}")
            time.sleep(0.01)

    def _try_attach(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return "no frame ring here (is the emulator running with KARTBOT_FRAMES set?)"
        except OSError as e:
            return f"cannot open the frame ring: {e.strerror}"
        try:
            st = os.fstat(fd)
            if st.st_size < _HEADER.size:
                return f"{st.st_size} bytes is too small for a frame ring"
            head = os.pread(fd, _HEADER.size, 0)
            magic, version, header_bytes, slots, slot_bytes, pid, state, _, _ = _HEADER.unpack(head)
            if magic != MAGIC or state not in (STATE_OPEN, STATE_CLOSED):
                return "not a kartbot frame ring (or not set up yet)"
            if version != VERSION:
                return f"frame ring version {version}, this kartplay reads {VERSION}"
            size = header_bytes + slots * slot_bytes
            if st.st_size < size or slots < 2 or slot_bytes <= SLOT_HEADER_BYTES:
                return f"frame ring header says {slots} slots of {slot_bytes} bytes; file has {st.st_size}"
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        if self._mm is not None:
            self._mm.close()
        self._mm = mm
        self._inode = st.st_ino
        self.header_bytes = header_bytes
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._u64 = np.frombuffer(mm, np.uint64, count=size // 8)
        self._pid = pid
        # Frames older than the ring predate this reader: not lost, never seen.
        self._cursor = max(0, self.published - slots)
        return None

    def close(self) -> None:
        if self._mm is not None:
            self._u64 = np.empty(0, np.uint64)
            self._mm.close()
            self._mm = None

    def __enter__(self) -> FrameRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------

    @property
    def published(self) -> int:
        """Frames the plugin has written into the ring so far."""
        return int(self._u64[_PUBLISHED_AT // 8])

    @property
    def skipped(self) -> int:
        """Pad polls with nothing to show (VI blank, frame buffer outside RDRAM)."""
        return int(self._u64[_PUBLISHED_AT // 8 + 1])

    @property
    def writer_pid(self) -> int:
        return self._pid

    @property
    def closed(self) -> bool:
        """The emulator closed the ROM, or died without closing it."""
        assert self._mm is not None
        state = struct.unpack_from("<I", self._mm, _STATE_AT)[0]
        if state != STATE_OPEN:
            return True
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            return True  # killed: nobody will write here again
        except PermissionError:
            pass  # someone else's process, alive
        return False

    def _restarted(self) -> bool:
        """A new emulator run took the ring over: start over from its frame 0."""
        assert self._mm is not None
        pid = struct.unpack_from("<I", self._mm, 24)[0]
        if pid != self._pid or self.published < self._cursor:
            self._pid = pid
            self._cursor = 0
            return True
        if not self.closed:
            return False
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return False
        # the ring file was replaced (deleted and made anew): map the new one
        return inode != self._inode and self._try_attach() is None

    # -- reading ---------------------------------------------------------------

    def _slot_offset(self, index: int) -> int:
        return self.header_bytes + (index % self.slots) * self.slot_bytes

    def read(self, index: int) -> EmuFrame | bool | None:
        """Frame ``index`` if it is in the ring and whole; ``False`` if it was
        overwritten already; ``None`` if it is being written right now."""
        assert self._mm is not None
        off = self._slot_offset(index)
        seq_at = off // 8
        s1 = int(self._u64[seq_at])
        if s1 & 1:
            return None
        (_, slot_index, frame, t_ns, pad, flags, width, height, bits, origin, cost, _) = (
            _SLOT.unpack_from(self._mm, off)
        )
        if slot_index != index:
            return False if slot_index > index else None
        nbytes = (width * height * bits // 8 + 3) & ~3
        if bits not in (16, 32) or nbytes > self.slot_bytes - SLOT_HEADER_BYTES:
            return None  # a torn header: the writer is at it again
        words = np.frombuffer(
            self._mm, np.uint32, count=nbytes // 4, offset=off + SLOT_HEADER_BYTES
        ).copy()
        if int(self._u64[seq_at]) != s1:
            # rewritten while copying: by a newer frame, or with its own pad (lockstep)
            return False if int(self._u64[seq_at + 1]) != index else None
        return EmuFrame(
            index=index,
            frame=frame,
            pad_word=pad if flags & _PAD_KNOWN else None,
            t_ns=t_ns,
            width=width,
            height=height,
            bits=bits,
            origin=origin,
            publish_ns=cost,
            words=words,
        )

    def next(self, timeout: float, *, with_pad: bool = False) -> EmuFrame | None:
        """The next frame in order (waits up to ``timeout`` s; None if none came).

        With ``with_pad`` it also waits until the game's pad for the frame is
        known (lockstep: until the agent answered that poll)."""
        deadline = time.monotonic() + timeout
        while True:
            self._restarted()
            published = self.published
            oldest = published - self.slots
            if self._cursor < oldest:
                self.lost += oldest - self._cursor
                self._cursor = oldest
            if self._cursor < published:
                got = self.read(self._cursor)
                if got is False:
                    self.lost += 1
                    self._cursor += 1
                    continue
                if isinstance(got, EmuFrame) and (got.pad_word is not None or not with_pad):
                    self._cursor += 1
                    self.received += 1
                    return got
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def latest(self, timeout: float, *, after: int = -1) -> EmuFrame | None:
        """The newest frame whose index is above ``after`` (waits up to
        ``timeout`` s; None if none came). Frames passed over are not lost:
        a policy acts on the newest frame by design."""
        deadline = time.monotonic() + timeout
        while True:
            if self._restarted():
                after = -1
            published = self.published
            if published - 1 > after:
                got = self.read(published - 1)
                if isinstance(got, EmuFrame):
                    self._cursor = published
                    self.received += 1
                    return got
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def frames(self, timeout: float, *, with_pad: bool = False) -> Iterator[EmuFrame]:
        """Every frame in order until none comes for ``timeout`` s after the
        emulator closed the ROM."""
        while True:
            f = self.next(timeout, with_pad=with_pad)
            if f is not None:
                yield f
            elif self.closed and self._cursor >= self.published:
                return


# -- play: the policy's frames ----------------------------------------------------


class EmulatorFrameFeed:
    """What ``kartplay serve --frames emulator`` gives the agent instead of a
    screen capture (the same ``wait`` / ``grab`` / ``recent`` / ``close`` as
    :class:`kartplay.serve.FrameFeed`).

    ``grab`` hands out a frame newer than the last one it handed out, so the
    agent acts once per emulator frame; in lockstep the plugin publishes a
    poll's frame before it asks for the pad, so the newest frame is exactly the
    one the agent's action answers."""

    def __init__(self, path: str | Path = DEFAULT_RING_PATH, *, frame_timeout: float = 0.5) -> None:
        self.path = Path(path)
        self.frame_timeout = frame_timeout
        self.ring: FrameRing | None = None
        self._lock = threading.Lock()
        self._latest: EmuFrame | None = None
        self._handed_out = -1
        #: (monotonic time, ms) per grab: converting the frame to RGB (not the
        #: wait for it, which is the emulator's pace).
        self.capture_ms: deque[tuple[float, float]] = deque(maxlen=4096)
        #: (monotonic time, ms) per grab: the frame's age when the agent got it.
        self.age_ms: deque[tuple[float, float]] = deque(maxlen=4096)
        #: The frame number of each frame handed to the agent, newest last.
        self.frames_used: deque[int] = deque(maxlen=1 << 16)

    def wait(self, timeout_s: float) -> tuple[int, int]:
        """(height, width) of the game's frames, once the emulator shows one."""
        self.ring = FrameRing(self.path, wait_s=timeout_s)
        first = self.ring.latest(timeout_s)
        if first is None:
            raise FrameRingError(f"{self.path}: no frame in {timeout_s:g} s")
        return first.height, first.width

    def _ring(self) -> FrameRing | None:
        if self.ring is None:
            try:
                self.ring = FrameRing(self.path)
            except FrameRingError:
                return None
        return self.ring

    @property
    def last_frame(self) -> EmuFrame | None:
        with self._lock:
            return self._latest

    def grab(self) -> np.ndarray | None:
        """The newest frame as RGB, or None when the emulator shows none in
        ``frame_timeout`` (stopped, paused, restarting)."""
        ring = self._ring()
        if ring is None:
            time.sleep(self.frame_timeout)
            return None
        f = ring.latest(self.frame_timeout, after=self._handed_out)
        if f is None:
            return None
        t0 = time.perf_counter()
        self._handed_out = f.index
        rgb = f.rgb
        now = time.monotonic()
        self.capture_ms.append((now, (time.perf_counter() - t0) * 1e3))
        self.age_ms.append((now, (time.monotonic_ns() - f.t_ns) / 1e6))
        self.frames_used.append(f.frame)
        with self._lock:
            self._latest = f
        return rgb

    def recent(self, max_age_s: float) -> np.ndarray | None:
        """For the correction recorder: the agent's latest frame if young enough."""
        with self._lock:
            f = self._latest
        if f is not None and (time.monotonic_ns() - f.t_ns) / 1e9 <= max_age_s:
            return f.rgb
        return self.grab()

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()


# -- record: every frame with the pad the game read ------------------------------


@dataclass(frozen=True, slots=True)
class EmuRecordConfig:
    """``kartplay record-emulator``: where and what to record."""

    out: str
    ring: str = DEFAULT_RING_PATH
    #: Keep every k-th frame (1: the game's full 60 frames/s).
    every: int = 1
    game: str = "unknown"
    track: str = "unknown"
    player: str = "human"
    image_format: str = "png"
    #: Seconds to wait for the emulator's first frame.
    wait_s: float = 30.0
    #: Once the emulator closed the ROM, frames still unread are taken for this long.
    drain_s: float = 1.0
    #: Stop after this many frames written (0: until the emulator stops).
    max_frames: int = 0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise KartError(f"--every {self.every}: keep every k-th frame, k >= 1")
        if self.image_format not in IMAGE_FORMATS:
            raise KartError(
                f"image format {self.image_format!r} is not one of {', '.join(IMAGE_FORMATS)}"
            )
        if self.max_frames < 0 or self.wait_s < 0 or self.drain_s < 0:
            raise KartError("--max-frames, --wait and --drain must be >= 0")


@dataclass(frozen=True, slots=True)
class EmuRecordResult:
    path: Path
    frames_written: int
    #: Frames the plugin published that this recorder never got (ring overrun).
    frames_lost: int
    #: The frame numbers of the first and last frame written.
    first_frame: int
    last_frame: int


#: Frames encoded at once while recording: PNG at 60 frames/s needs more than
#: one core, and the ring must be drained while they encode.
ENCODE_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Frames read out of the ring and not yet written (about 2 s of the game).
MAX_PENDING = 120


def record(
    cfg: EmuRecordConfig,
    *,
    stop: threading.Event | None = None,
    on_frame: Callable[[EmuFrame], None] | None = None,
) -> EmuRecordResult:
    """Write the emulator's frames, each with the pad word the game read for
    it, into a new native session at ``cfg.out``, until the emulator closes the
    ROM, ``stop`` is set or ``cfg.max_frames`` are written.

    Session frame ``i`` is the game's frame ``first_frame + i * every``
    (``first_frame`` in the session's ``extra``); a frame the ring lost leaves a
    gap in the indices (and is counted), never a wrong pairing. The ring is
    drained by this thread while ``ENCODE_THREADS`` encode, so a slow encode
    costs memory (up to ``MAX_PENDING`` frames), not frames."""
    from kartdata.sources.native import SessionWriter, encode_image

    stop = stop or threading.Event()
    written = 0
    first = last = -1
    with FrameRing(cfg.ring, wait_s=cfg.wait_s) as ring:
        f0 = ring.next(cfg.wait_s, with_pad=True)
        if f0 is None:
            raise FrameRingError(f"{cfg.ring}: no frame from the emulator in {cfg.wait_s:g} s")
        meta = SessionMeta(
            game=cfg.game,
            track=cfg.track,
            player=cfg.player,
            width=f0.width,
            height=f0.height,
            fps=EMULATOR_FPS / cfg.every,
            image_format=cfg.image_format,
            extra={
                "source": "emulator frames",
                "every": cfg.every,
                "bits": f0.bits,
                "first_frame": f0.frame,
            },
        )
        pending: deque[tuple[EmuFrame, Future[bytes]]] = deque()

        def encode(f: EmuFrame) -> bytes:
            return encode_image(np.ascontiguousarray(f.rgb), cfg.image_format)

        with SessionWriter(cfg.out, meta) as writer, ThreadPoolExecutor(ENCODE_THREADS) as pool:

            def write_done(wait: bool) -> None:
                nonlocal written, first, last
                while pending and (wait or pending[0][1].done()):
                    f, job = pending.popleft()
                    index = (f.frame - f0.frame) // cfg.every
                    writer.write(job.result(), f.pad, t_ns=f.t_ns, index=index)
                    written += 1
                    first = f.frame if first < 0 else first
                    last = f.frame
                    if on_frame is not None:
                        on_frame(f)

            f: EmuFrame | None = f0
            prev = -1
            taken = 0
            closed_at: float | None = None
            while not stop.is_set():
                if f is not None:
                    if f.frame <= prev:
                        break  # a new emulator run took the ring over: this session ends here
                    prev = f.frame
                    if (f.frame - f0.frame) % cfg.every == 0:
                        if (f.height, f.width) != (meta.height, meta.width):
                            raise FrameRingError(
                                f"{cfg.ring}: frame {f.frame} is {f.width}x{f.height}, the "
                                f"session {meta.width}x{meta.height}; record it as a new session"
                            )
                        pending.append((f, pool.submit(encode, f)))
                        taken += 1
                        if cfg.max_frames and taken >= cfg.max_frames:
                            break
                elif ring.closed:
                    closed_at = closed_at or time.monotonic()
                    if time.monotonic() - closed_at >= cfg.drain_s:
                        break
                write_done(wait=len(pending) >= MAX_PENDING)
                f = ring.next(0.02 if pending else 0.1, with_pad=True)
            write_done(wait=True)
            lost = ring.lost
    return EmuRecordResult(Path(cfg.out), written, lost, first, last)


class ServedInput:
    """Serves the pad a human holds (any :class:`kartdata.devices.controls.InputSource`)
    to the plugin, read in one thread at ``hz``; its ``quit`` hotkey sets ``stop``."""

    def __init__(self, source: Any, stop: threading.Event, hz: float = 500.0) -> None:
        self.source = source
        self.stop = stop
        self.period = 1.0 / hz
        self.mailbox = LatestPads()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kartplay-pad", daemon=True)

    def start(self) -> ServedInput:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                controls = self.source.read()
                self.mailbox.publish(0, controls.pad)
                if "quit" in controls.hotkeys:
                    self.stop.set()
                time.sleep(self.period)
        except BaseException as e:  # reported by record_with_pad
            self.error = e
            self.stop.set()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)


def record_with_pad(
    cfg: EmuRecordConfig,
    source: Any,
    server: ServerConfig | None = None,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
) -> EmuRecordResult:
    """The recording a human makes: serve ``source``'s pad (an
    :class:`~kartdata.devices.controls.InputSource`) to the plugin, which polls
    it free-run, and :func:`record` until the emulator stops, ``stop`` is set
    or the ``quit`` hotkey is pressed. ``on_ready`` gets the server's address."""
    stop = stop or threading.Event()
    served = ServedInput(source, stop)
    try:
        with PadServer(served.mailbox, server or ServerConfig()) as srv:
            served.start()
            if on_ready is not None:
                on_ready(srv.address)
            result = record(cfg, stop=stop)
    finally:
        served.close()
        source.close()
    if served.error is not None:
        raise KartError(f"reading the pad failed: {served.error}")
    return result
