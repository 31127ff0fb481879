"""What every recording reader yields."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kartdata.errors import SourceError
from kartdata.schema import Pad, SessionMeta

try:  # optional accelerator; Pillow decodes everything it does, only slower
    import pyspng as _spng
except ImportError:  # pragma: no cover - depends on the install
    _spng = None

#: Marks an image file that a recording names but that is not there (validate
#: reports it as a ``missing`` frame; the key must still exist).
_MISSING = b"\xffmissing"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a recording: its controls, and a way to load its pixels.

    Loading is deferred so that a reader can stream controls without touching
    image bytes (and a validator can decide which images to decode).
    """

    index: int
    t_ns: int
    pad: Pad
    tags: tuple[str, ...]
    #: Where the pixels live, for messages: a file path or ``file.npy[i]``.
    where: str
    #: Line of the controls table this frame came from (1-based), if any.
    line: int | None
    _load: Callable[[], np.ndarray]
    #: The image file holding this frame alone, if there is one (not for
    #: layouts that pack frames into one file): lets the sharder keep or
    #: scale an already compressed image without decoding it in full.
    file: str | None = None

    def image(self) -> np.ndarray:
        """Pixels as an ``(H, W, 3)`` uint8 RGB array; :class:`SourceError` naming
        the file and frame if they cannot be read."""
        return self._load()


class Source(Protocol):
    """A recording: metadata plus a stream of frames. Never writes."""

    #: ``native``, ``tensorkart`` or ``ctr``.
    layout: str
    path: Path

    @property
    def meta(self) -> SessionMeta: ...

    @property
    def key(self) -> str:
        """``<layout>-<recording>-<content>``: ``recording`` fingerprints what
        names the recording (its tables; a CTR file's name), ``content`` every
        byte of every frame. The same recording gives the same key wherever it
        lies, so re-sharding it is skipped; one whose frames changed keeps its
        recording part, so the sharder can tell it from a new one."""
        ...

    def frames(self) -> Iterator[Frame]: ...


def load_image_file(path: str | Path, frame: int) -> np.ndarray:
    """Decode an image file fully (a truncated file raises here, not later)."""
    return decode_image(read_image_file(path, frame), str(path), frame)


def decode_image(data: bytes, where: str, frame: int) -> np.ndarray:
    """An image's bytes as (H, W, 3) uint8 RGB: the one decoder of recorded
    frames, so validation and sharding see the same pixels. PNG goes through
    libspng (about three times as fast as Pillow's decoder, and decoding is
    most of the cost of both); 16-bit PNGs keep their high bytes. A corrupt or
    truncated image is a :class:`SourceError` naming ``where`` and the frame."""
    if _spng is not None and data.startswith(_PNG_MAGIC):
        try:
            arr = _spng.load(data, format="RGB")
        except Exception as e:  # libspng reports every defect as a RuntimeError
            raise SourceError(f"{where}: frame {frame}: corrupt or truncated image ({e})") from None
        if arr.dtype != np.uint8:  # 16-bit PNG
            arr = (arr >> 8).astype(np.uint8)
        return arr
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:
        raise SourceError(f"{where}: frame {frame}: corrupt or truncated image ({e})") from None


def read_image_file(path: str | Path, frame: int) -> bytes:
    """An image file's bytes; :class:`SourceError` naming the file and frame
    when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"{path}: frame {frame}: image file is missing") from None
    except PermissionError:
        raise SourceError(f"{path}: frame {frame}: image file is not readable") from None
    except OSError as e:
        raise SourceError(f"{path}: frame {frame}: image file is not readable ({e})") from None


def fingerprint(*parts: bytes | Path) -> str:
    """sha256 over byte strings and file contents, streamed, as 16 hex digits."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            try:
                with part.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as e:
                raise SourceError(f"{part}: cannot read ({e.strerror})") from None
        else:
            h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def frames_fingerprint(paths: Iterable[str]) -> str:
    """Every byte of every image file, streamed, as 16 hex digits.

    Each file's bytes go through CRC32C (SSE4.2 / ARMv8 instructions, tens of
    GB/s: the cost per frame is the read, not the digest), and each file's
    name, size and CRC are folded into one sha256 in order. A repaired frame of
    the same size changes its CRC, hence the key; the size and name only guard
    against a frame moved or renamed. ``paths`` are strings: at ~40 µs a
    frame, pathlib's own overhead was a third of the cost.
    """
    import google_crc32c

    h = hashlib.sha256()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            h.update(os.path.basename(path).encode() + _MISSING + b"\0")
            continue
        except OSError as e:
            raise SourceError(f"{path}: cannot read ({e.strerror})") from None
        crc, size = 0, 0
        try:
            while chunk := os.read(fd, _READ_CHUNK):
                crc = google_crc32c.extend(crc, chunk)
                size += len(chunk)
        except OSError as e:
            raise SourceError(f"{path}: cannot read ({e.strerror})") from None
        finally:
            os.close(fd)
        h.update(f"{os.path.basename(path)}\0{size}\0{crc:08x}\0".encode())
    return h.hexdigest()[:16]


def recording_of(key: str) -> str:
    """The recording part of a session key (``<layout>-<recording>``): the same
    for two versions of one recording whose frames differ."""
    layout, _, rest = key.partition("-")
    return f"{layout}-{rest.split('-', 1)[0]}"


def legacy_keys(key: str) -> tuple[str, str]:
    """What this recording's key was before keys covered the frames
    (``<layout>-<tables>`` for native and TensorKart, ``<layout>-<file>`` for
    CTR), to recognise sessions in datasets sharded by kartkit before then."""
    layout, _, rest = key.partition("-")
    first, _, second = rest.partition("-")
    return f"{layout}-{first}", f"{layout}-{second}"
