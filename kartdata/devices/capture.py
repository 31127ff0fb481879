"""Screen capture of a region, and finding a game window's region by its title on X11.

``ScreenCapture.grab(region)`` returns RGB pixels through ``mss``. ``find_window``
asks the X server (python-xlib) for a top-level window whose title contains a
string and returns its client area — the pixels the game draws, without the
window manager's title bar or borders. ``WindowRegion`` keeps such a region up to
date while the window moves, so that a recorder or the play server never depends
on where the emulator happens to sit on the desktop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kartdata.devices.x11 import DisplayError, display_name, open_display
from kartdata.errors import KartError


class CaptureError(KartError):
    """No display, no such window, or a region the screen cannot supply."""


@dataclass(frozen=True, slots=True)
class Region:
    """A screen rectangle in root-window pixels: top-left corner and size."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"region size {self.width}x{self.height} is not positive")

    @classmethod
    def parse(cls, text: str) -> Region:
        """``X,Y,W,H`` (the CLI's ``--region``)."""
        parts = [p.strip() for p in text.split(",")]
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise CaptureError(f"region {text!r} is not X,Y,W,H (four integers)") from None
        try:
            return cls(x, y, w, h)
        except ValueError as e:
            raise CaptureError(f"region {text!r}: {e}") from None

    def split(self, parts: int = 2, *, vertical: bool = True) -> list[Region]:
        """Split-screen views: side by side (``vertical``) or stacked."""
        if vertical:
            w = self.width // parts
            return [Region(self.x + i * w, self.y, w, self.height) for i in range(parts)]
        h = self.height // parts
        return [Region(self.x, self.y + i * h, self.width, h) for i in range(parts)]

    def moved_to(self, x: int, y: int) -> Region:
        return Region(x, y, self.width, self.height)

    def clamped(self, screen: Region) -> Region:
        """The same size, shifted to lie inside ``screen`` where it fits (a window
        dragged partly off-screen keeps the capture size fixed)."""
        x = min(max(self.x, screen.x), max(screen.x, screen.x + screen.width - self.width))
        y = min(max(self.y, screen.y), max(screen.y, screen.y + screen.height - self.height))
        return Region(x, y, self.width, self.height)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


class ScreenCapture:
    """Grabs screen regions with ``mss``; one mss connection per thread, since an
    mss instance must not be shared across threads."""

    def __init__(self, display: str | None = None) -> None:
        try:
            self.display = display_name(display)
        except DisplayError as e:
            raise CaptureError(str(e)) from None
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _mss(self) -> Any:
        sct = getattr(self._local, "sct", None)
        if sct is None:
            import mss

            # mss 10 renamed the factory to MSS; 9.x only has mss.mss
            factory = getattr(mss, "MSS", None) or mss.mss
            try:
                sct = factory(display=self.display)
            except Exception as e:  # mss raises its own ScreenShotError and ctypes errors
                raise CaptureError(f"cannot open X display {self.display!r}: {e}") from None
            self._local.sct = sct
            with self._lock:
                self._all.append(sct)
        return sct

    def screen(self) -> Region:
        """The whole X screen (mss monitor 0: every monitor together)."""
        m = self._mss().monitors[0]
        return Region(m["left"], m["top"], m["width"], m["height"])

    def grab(self, region: Region) -> np.ndarray:
        """Pixels of ``region`` as a new (H, W, 3) uint8 RGB array."""
        try:
            shot = self._mss().grab(
                {
                    "left": region.x,
                    "top": region.y,
                    "width": region.width,
                    "height": region.height,
                }
            )
        except CaptureError:
            raise
        except Exception as e:
            raise CaptureError(f"cannot capture region {region} on {self.display}: {e}") from None
        bgra = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        return np.ascontiguousarray(bgra[:, :, 2::-1])

    def close(self) -> None:
        with self._lock:
            for sct in self._all:
                sct.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> ScreenCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Finding a window by title (X11, python-xlib)
# ---------------------------------------------------------------------------


def _open_capture_display(display: str | None) -> Any:
    try:
        return open_display(display)
    except DisplayError as e:
        raise CaptureError(str(e)) from None


def _title(d: Any, win: Any) -> str | None:
    from Xlib import Xatom

    try:
        net = win.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
        if net is not None and net.value:
            v = net.value
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        wm = win.get_full_property(Xatom.WM_NAME, 0)
        if wm is not None and wm.value:
            v = wm.value
            return v.decode("latin-1") if isinstance(v, bytes) else str(v)
    except Exception:  # the window vanished while we looked (BadWindow)
        return None
    return None


def _walk(win: Any) -> Iterator[Any]:
    try:
        children = win.query_tree().children
    except Exception:
        return
    for child in children:
        yield child
        yield from _walk(child)


def _viewable(win: Any) -> bool:
    from Xlib import X

    try:
        return win.get_attributes().map_state == X.IsViewable
    except Exception:
        return False


def _client_region(d: Any, win: Any) -> Region | None:
    """The window's own area in root coordinates. Under a window manager the
    titled window is the client inside the WM's frame, so its geometry already
    excludes the title bar and borders."""
    try:
        geom = win.get_geometry()
        pos = d.screen().root.translate_coords(win, 0, 0)
    except Exception:
        return None
    if geom.width <= 0 or geom.height <= 0:
        return None
    return Region(int(pos.x), int(pos.y), int(geom.width), int(geom.height))


def find_window_id(title: str, display: str | None = None, *, _d: Any = None) -> int | None:
    """X id of the first viewable window whose title contains ``title``."""
    d = _d if _d is not None else _open_capture_display(display)
    try:
        for win in _walk(d.screen().root):
            name = _title(d, win)
            if name is not None and title in name and _viewable(win):
                return int(win.id)
        return None
    finally:
        if _d is None:
            d.close()


def find_window(title: str, display: str | None = None) -> Region | None:
    """Client area of the first viewable window whose title contains ``title``,
    or None when there is none."""
    d = _open_capture_display(display)
    try:
        wid = find_window_id(title, _d=d)
        if wid is None:
            return None
        return _client_region(d, d.create_resource_object("window", wid))
    finally:
        d.close()


#: A followed window's place is asked of the X server again after this long even
#: without an event saying it changed (a window manager that sends none).
REVALIDATE_S = 0.25


class WindowRegion:
    """The current client area of a window found by title, followed as it moves.

    ``current()`` answers from what it last asked the X server (no round trip)
    until the window reports a change — a move, resize, unmap or destroy
    (StructureNotify events; window managers send the client a ConfigureNotify
    when they move its frame) — or ``REVALIDATE_S`` has passed; then it asks
    again (three round trips), and looks the title up again when the window has
    gone. The capture size stays the one first found, so every frame of a
    session has the same shape; a resized window is captured from its top-left
    corner.
    """

    def __init__(self, title: str, display: str | None = None) -> None:
        self.title = title
        self._d = _open_capture_display(display)
        self._wid: int | None = None
        self._size: tuple[int, int] | None = None
        self._known: Region | None = None
        self._asked = 0.0
        self._lock = threading.Lock()

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) fixed at the first successful lookup."""
        return self._size

    def current(self) -> Region | None:
        """Where the window is now, or None while no such window is shown."""
        import time

        with self._lock:
            now = time.monotonic()
            if self._known is not None and not self._changed() and now - self._asked < REVALIDATE_S:
                return self._known
            self._known = self._ask()
            self._asked = now
            return self._known

    def _changed(self) -> bool:
        """Whether an event about the window has arrived (reads what is there, no round trip)."""
        from Xlib import X

        changed = False
        try:
            while self._d.pending_events():
                e = self._d.next_event()
                if e.type in (X.ConfigureNotify, X.UnmapNotify, X.DestroyNotify, X.ReparentNotify):
                    changed = True
        except Exception:  # the connection broke: ask, and let that raise
            return True
        return changed

    def _ask(self) -> Region | None:
        from Xlib import X

        for attempt in range(2):
            if self._wid is None:
                self._wid = find_window_id(self.title, _d=self._d)
                if self._wid is None:
                    return None
                try:
                    win = self._d.create_resource_object("window", self._wid)
                    win.change_attributes(event_mask=X.StructureNotifyMask)
                except Exception:  # gone already
                    self._wid = None
                    continue
            win = self._d.create_resource_object("window", self._wid)
            r = _client_region(self._d, win) if _viewable(win) else None
            if r is not None:
                if self._size is None:
                    self._size = (r.width, r.height)
                return Region(r.x, r.y, *self._size)
            self._wid = None  # gone or unmapped: look the title up again
            if attempt:
                return None
        return None

    def wait(self, timeout_s: float) -> Region:
        """Poll until the window shows, or raise :class:`CaptureError`."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            r = self.current()
            if r is not None:
                return r
            if time.monotonic() >= deadline:
                raise CaptureError(f"no window titled {self.title!r} within {timeout_s:g} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._d.close()
