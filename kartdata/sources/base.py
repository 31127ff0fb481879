"""What every recording reader yields."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kartdata.errors import SourceError
from kartdata.schema import Pad, SessionMeta

#: Marks an image file that a recording names but that is not there (validate
#: reports it as a ``missing`` frame; the key must still exist).
_MISSING = b"\xffmissing"
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


def load_image_file(path: Path, frame: int) -> np.ndarray:
    """Decode an image file fully (a truncated file raises here, not later)."""
    if path.suffix.lower() == ".png":
        fast = _load_png_fast(path, frame)
        if fast is not None:
            return fast
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise SourceError(f"{path}: frame {frame}: image file is missing") from None
    except PermissionError:
        raise SourceError(f"{path}: frame {frame}: image file is not readable") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"{path}: frame {frame}: corrupt or truncated image ({e})") from None
    return np.asarray(rgb, dtype=np.uint8)


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


def _load_png_fast(path: Path, frame: int) -> np.ndarray | None:
    """8-bit RGB / RGBA PNGs through libspng (~3x faster than Pillow, which
    decoding dominates when sharding); ``None`` for anything else, which Pillow
    then decodes."""
    try:
        import pyspng
    except ImportError:
        return None
    data = read_image_file(path, frame)
    # IHDR: bit depth at byte 24, colour type at 25 (2 RGB, 6 RGBA)
    if (
        len(data) < 26
        or data[:8] != b"\x89PNG\r\n\x1a\n"
        or data[24] != 8
        or data[25] not in (2, 6)
    ):
        return None
    try:
        pixels = pyspng.load(data)
    except RuntimeError as e:
        raise SourceError(f"{path}: frame {frame}: corrupt or truncated image ({e})") from None
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        return None
    return pixels if pixels.shape[2] == 3 else np.ascontiguousarray(pixels[..., :3])


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
