"""How a frame becomes the image bytes a shard stores: scaled down to fit the
encoding's box, then JPEG. The one place that encodes stored images.

The cheapest way that gives the stored image is taken (docs/benchmarks.md,
"Sharding at the per-frame floor", has what each bought):

- a JPEG file already within the box is stored as recorded: its bytes are the
  stored image (no decode, no second generation of JPEG loss);
- a larger JPEG file is decoded by libjpeg already scaled down (its DCT scaling,
  Pillow's draft mode) to the smallest 1/2, 1/4 or 1/8 at least the stored size,
  and only the rest of the way resized;
- anything else (PNG, pixels from a packed layout) is decoded in full and
  reduced: an exact halving (640x480 → 320x240, the common case) by OpenCV's
  area resize where the ``fast`` extra is installed — the same pixels as
  Pillow's 2x2 box reduce, ~7x faster and without first copying the frame
  into a Pillow image — and any other size in Pillow, without going back to
  numpy in between.
"""

from __future__ import annotations

import functools
import io
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kartdata.errors import SourceError
from kartdata.manifest import Encoding
from kartdata.sources.base import Frame, read_image_file

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A frame as a shard stores it, and the size it was recorded at."""

    jpeg: bytes
    height: int
    width: int
    #: (width, height) of the recorded frame, for the session's one-size check.
    source_size: tuple[int, int]


class StoredSpool:
    """Stored images made from pixels that validation decoded anyway, for the
    sharder to take instead of decoding each frame a second time.

    Use :meth:`add` as validation's image observer. The images wait in an
    unnamed temporary file (a long session's worth is hundreds of MB, and the
    file goes away with the process, however it ends). JPEG files are left out:
    :func:`store_frame` has a cheaper way for them than a full decode.
    """

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close() / with
        self._at: dict[int, tuple[int, int, int, int, tuple[int, int]]] = {}

    def add(self, frame: Frame, image: np.ndarray) -> None:
        if _is_jpeg_file(frame.where):
            return
        s = store_pixels(image, self.encoding)
        offset = self._file.seek(0, io.SEEK_END)
        self._file.write(s.jpeg)
        self._at[frame.index] = (offset, len(s.jpeg), s.height, s.width, s.source_size)

    def take(self, index: int) -> StoredImage | None:
        """Frame ``index``'s stored image, if validation decoded it."""
        at = self._at.pop(index, None)
        if at is None:
            return None
        offset, n, height, width, source_size = at
        self._file.seek(offset)
        return StoredImage(self._file.read(n), height, width, source_size)

    def __len__(self) -> int:
        return len(self._at)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> StoredSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _is_jpeg_file(path: str | None) -> bool:
    return path is not None and path.lower().endswith(_JPEG_SUFFIXES)


def store_frame(frame: Frame, encoding: Encoding, spool: StoredSpool | None = None) -> StoredImage:
    """The stored image of ``frame`` (from ``spool`` when it holds it):
    SourceError naming the file and frame if it cannot be read."""
    if spool is not None and (stored := spool.take(frame.index)) is not None:
        return stored
    if frame.file is not None and _is_jpeg_file(frame.file):
        stored = _from_jpeg_file(frame.file, frame.index, encoding)
        if stored is not None:
            return stored
    return store_pixels(frame.image(), encoding)


def store_pixels(image: np.ndarray, encoding: Encoding) -> StoredImage:
    """The stored image of decoded (H, W, 3) uint8 pixels."""
    from PIL import Image

    h, w = image.shape[:2]
    size = encoding.stored_size(w, h)
    cv2 = opencv() if size == (w // 2, h // 2) and w % 2 == h % 2 == 0 else None
    if cv2 is not None:
        stored = Image.fromarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    else:
        stored = _fit(Image.fromarray(image), encoding)
    return StoredImage(_jpeg(stored, encoding), stored.height, stored.width, (w, h))


@functools.cache
def opencv() -> Any | None:
    """OpenCV (the ``fast`` extra), or None where it is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def encode_stored_image(image: np.ndarray, encoding: Encoding) -> tuple[bytes, int, int]:
    """JPEG bytes, height and width of decoded pixels as stored."""
    s = store_pixels(image, encoding)
    return s.jpeg, s.height, s.width


def resize_to_fit(image: np.ndarray, encoding: Encoding) -> np.ndarray:
    """The pixels as stored (before JPEG): scaled down to fit the encoding's box."""
    from PIL import Image

    h, w = image.shape[:2]
    if encoding.stored_size(w, h) == (w, h):
        return image
    return np.asarray(_fit(Image.fromarray(image), encoding))


def _fit(im: PILImage, encoding: Encoding) -> PILImage:
    from PIL import Image

    size = encoding.stored_size(*im.size)
    if size == im.size:
        return im
    # reducing_gap=1: box-reduce by the integer factor first (exact and fast for
    # the common 640x480 → 320x240), then bilinear for any remainder.
    return im.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)


def _jpeg(im: PILImage, encoding: Encoding) -> bytes:
    buf = io.BytesIO()
    # optimize: per-image Huffman tables, ~15 % smaller for a few % more time
    im.save(buf, format="JPEG", quality=encoding.quality, optimize=True)
    return buf.getvalue()


def _from_jpeg_file(path: str, frame: int, encoding: Encoding) -> StoredImage | None:
    """A JPEG file kept as it is, or decoded scaled down; ``None`` when the
    file is not a JPEG after all (its name lied), for the general path."""
    from PIL import Image, UnidentifiedImageError

    data = read_image_file(path, frame)
    if not data.startswith(_JPEG_SOI):
        return None
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
        size = encoding.stored_size(*im.size)
        if size == im.size and im.mode == "RGB" and data.rstrip(b"\0").endswith(_JPEG_EOI):
            # complete, colour and within the box: these bytes are the stored image
            return StoredImage(data, im.height, im.width, im.size)
        source_size = im.size
        im.draft("RGB", size)
        im.load()
        im = im.convert("RGB") if im.mode != "RGB" else im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"{path}: frame {frame}: corrupt or truncated image ({e})") from None
    if im.size != size:  # the draft is at least the stored size: the rest of the way
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
    return StoredImage(_jpeg(im, encoding), im.height, im.width, source_size)
