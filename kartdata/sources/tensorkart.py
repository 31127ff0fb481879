"""Reader for TensorKart recordings (kevinhughes27/TensorKart and its forks).

::

    SESSION/            often named by its start time, e.g. ``2017-01-05_12:00:00``
      data.csv          no header; one row per frame: ``image_path,x,y,a,b,rb``
      img_<t>.png       640x480 RGB screenshots

How a row maps onto kartkit's pad:

- ``image_path`` is the path the recorder wrote at the time (usually with an
  output directory that no longer exists), so only its FILE NAME is used, looked
  up inside the session directory. A name that is empty, ``.`` or ``..``, or a
  file that resolves outside the session (a symlink), is an error.
- ``x`` → ``x`` unchanged (+x right in both).
- ``y`` → ``-y``: TensorKart stored the raw evdev value, stick DOWN positive;
  kartkit's +y is UP (the N64 convention).
- ``a`` → A, ``b`` → B (the pad's X button was recorded as N64 B), ``rb`` → R.

The recorder opened ``data.csv`` in append mode, so one directory may hold
several recordings one after another, each with its image counter ``<t>``
restarting at 0. Rows keep their order and get frame indexes 0, 1, 2, … in
row order (``img_<t>`` only locates the file). TensorKart saved no timestamps:
``t_ns`` is synthesised from the row order at the recorder's nominal 5 Hz
(200 ms timer), and where the counter restarts (a new recording) the clock jumps
by :data:`RESTART_GAP_NS`, so nothing downstream mistakes two recordings for one
continuous drive.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from kartdata.errors import SourceError
from kartdata.schema import Pad, SchemaError, SessionMeta
from kartdata.sources.base import Frame, fingerprint, frames_fingerprint, load_image_file

DATA_FILE = "data.csv"
COLUMNS = ("path", "x", "y", "a", "b", "rb")
#: TensorKart's recorder ran on a 200 ms timer.
NOMINAL_FPS = 5.0
FRAME_NS = int(1e9 / NOMINAL_FPS)
#: Clock jump inserted where an appended recording starts.
RESTART_GAP_NS = 60 * 10**9
_COUNTER = re.compile(r"img_(\d+)\.\w+$")


class TensorKartSession:
    """Reads one TensorKart session directory. Never writes."""

    layout = "tensorkart"

    def __init__(self, path: str | Path, *, key: str | None = None) -> None:
        """``key``: as for :class:`~kartdata.sources.native.NativeSession`."""
        self.path = Path(path)
        self._meta: SessionMeta | None = None
        self._key = key
        self._real: Path | None = None

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE

    @property
    def key(self) -> str:
        if self._key is None:
            # by name only: the containment check (a resolve per row, most of
            # the key's cost) is the reader's, which refuses an escaping path
            images = [str(self._named(line, f[0])) for line, f in self._rows()]
            self._key = f"tensorkart-{fingerprint(self.data_path)}-{frames_fingerprint(images)}"
        return self._key

    @property
    def meta(self) -> SessionMeta:
        """Capture size from the first frame's image header (no decode)."""
        if self._meta is None:
            first = next(self._rows(), None)
            if first is None:
                raise SourceError(f"{self.data_path}: no rows")
            line, fields = first
            img = self._resolve(line, fields[0])
            width, height = _image_size(img, 0)
            self._meta = SessionMeta(
                game="mario-kart-64",
                track="unknown",
                player="unknown",
                width=width,
                height=height,
                fps=NOMINAL_FPS,
                created=_created_from_name(self.path.name),
                image_format=img.suffix.lstrip(".").lower() or "png",
                extra={"layout": self.layout, "directory": self.path.name},
            )
        return self._meta

    def frames(self) -> Iterator[Frame]:
        meta = self.meta
        tags = tuple(meta.tags)
        t_ns = 0
        last_counter: int | None = None
        for index, (line, fields) in enumerate(self._rows()):
            where = f"{self.data_path}:{line}"
            img = self._resolve(line, fields[0])
            counter = _counter(img.name)
            if index > 0:
                restarted = (
                    counter is not None and last_counter is not None and counter <= last_counter
                )
                t_ns += RESTART_GAP_NS if restarted else FRAME_NS
            last_counter = counter
            try:
                x, y = _number(fields[1], "x"), _number(fields[2], "y")
                buttons = {
                    name
                    for name, value in (("a", fields[3]), ("b", fields[4]), ("r", fields[5]))
                    if _bit(value, name)
                }
                pad = Pad(x=x, y=-y if y else 0.0, buttons=frozenset(buttons))
            except SchemaError as e:
                raise SourceError(f"{where}: {e}") from None
            yield Frame(
                index=index,
                t_ns=t_ns,
                pad=pad,
                tags=tags,
                where=str(img),
                line=line,
                _load=_loader(img, index),
                file=str(img),
            )

    # -- helpers -----------------------------------------------------------

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        path = self.data_path
        try:
            f = path.open("r", newline="", encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(f"{path}: missing") from None
        except PermissionError:
            raise SourceError(f"{path}: not readable (permission denied)") from None
        with f:
            try:
                for line, fields in enumerate(csv.reader(f), start=1):
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue
                    if len(fields) != len(COLUMNS):
                        raise SourceError(
                            f"{path}:{line}: {len(fields)} fields, expected {len(COLUMNS)} "
                            f"({','.join(COLUMNS)})"
                        )
                    yield line, [v.strip() for v in fields]
            except (csv.Error, UnicodeDecodeError) as e:
                raise SourceError(f"{path}: not a readable CSV ({e})") from None

    def _named(self, line: int, recorded: str) -> Path:
        """The session's file of the name a recorded path ends in."""
        name = _file_name(recorded)
        if name in ("", ".", ".."):
            raise SourceError(
                f"{self.data_path}:{line}: image path {recorded!r} escapes the session directory"
            )
        return self.path / name

    def _resolve(self, line: int, recorded: str) -> Path:
        """The image a recorded path names, looked up by file name in the session."""
        img = self._named(line, recorded)
        where = f"{self.data_path}:{line}"
        try:
            # A plain file named without a slash lies in the session; only a
            # symlink can lead out (one lstat a row, not a realpath of the tree).
            inside = not img.is_symlink() or img.resolve().parent == self._real_path()
        except OSError as e:
            raise SourceError(f"{where}: cannot resolve image path {recorded!r} ({e})") from None
        if not inside:
            raise SourceError(f"{where}: image path {recorded!r} escapes the session directory")
        return img

    def _real_path(self) -> Path:
        if self._real is None:
            self._real = self.path.resolve()
        return self._real


def _file_name(recorded: str) -> str:
    # Recordings made on Windows use backslashes; either way only the name counts.
    return PureWindowsPath(recorded).name if "\\" in recorded else PurePosixPath(recorded).name


def _loader(path: Path, index: int):  # -> Callable[[], np.ndarray]
    return lambda: load_image_file(path, index)


def _number(value: str, name: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise SchemaError(f"{name}={value!r} is not a number") from None
    if math.isnan(v) or not -1.0 <= v <= 1.0:
        raise SchemaError(f"{name}={value!r} is not a number in [-1, 1]")
    return v


def _bit(value: str, name: str) -> bool:
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if v not in (0.0, 1.0):
        raise SchemaError(f"button {name}={value!r} is not 0 or 1")
    return v == 1.0


def _counter(name: str) -> int | None:
    m = _COUNTER.match(name)
    return int(m.group(1)) if m else None


def _image_size(path: Path, frame: int) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise SourceError(f"{path}: frame {frame}: image file is missing") from None
    except PermissionError:
        raise SourceError(f"{path}: frame {frame}: image file is not readable") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"{path}: frame {frame}: corrupt or truncated image ({e})") from None


def _created_from_name(name: str) -> str:
    """``2017-01-05_12:00:00`` → ``2017-01-05T12:00:00``; anything else → ``""``."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[_ T](\d{2})[:\-](\d{2})[:\-](\d{2})", name)
    return f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}" if m else ""
