"""Decoding frames and reducing each to the few numbers the checks need.

Decoding a 640x480 PNG is the cost of validation, so it happens once per frame,
in worker processes (one per core), with libspng where it is installed (about
twice as fast as Pillow's PNG decoder), and every feature is computed on a fixed
120x160 sample of the pixels. Workers return features, never pixels.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from kartdata.errors import SourceError
from kartdata.sources.base import Frame

try:  # optional accelerator; Pillow decodes everything it does, only slower
    import pyspng as _spng
except ImportError:  # pragma: no cover - depends on the install
    _spng = None

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The sample every feature is computed on (rows, cols).
SAMPLE = (120, 160)
#: The desktop detector's grid of blocks over the sample (rows, cols).
GRID = (6, 8)
#: Per-block descriptor: mean R, G, B; luminance spread; edge energy; flat share.
BLOCK_FEATURES = 6
#: The frozen check compares this coarser thumbnail of consecutive frames.
THUMB = (30, 40)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(slots=True)
class Features:
    """Features of a run of consecutive frames of one session (arrays by position)."""

    index: np.ndarray  # int64 [n]: frame indexes
    error: list[str | None]  # why a frame could not be decoded
    height: np.ndarray  # int32 [n] (0 when undecodable)
    width: np.ndarray  # int32 [n]
    lum_max: np.ndarray  # float32 [n]
    lum_std: np.ndarray  # float32 [n]
    diff_prev: np.ndarray  # float32 [n]: mean |thumb - previous thumb|; nan if none
    blocks: np.ndarray  # float16 [n, GRID rows, GRID cols, BLOCK_FEATURES]

    @classmethod
    def concat(cls, parts: Sequence[Features]) -> Features:
        if not parts:
            return cls.empty()
        return cls(
            index=np.concatenate([p.index for p in parts]),
            error=[e for p in parts for e in p.error],
            height=np.concatenate([p.height for p in parts]),
            width=np.concatenate([p.width for p in parts]),
            lum_max=np.concatenate([p.lum_max for p in parts]),
            lum_std=np.concatenate([p.lum_std for p in parts]),
            diff_prev=np.concatenate([p.diff_prev for p in parts]),
            blocks=np.concatenate([p.blocks for p in parts]),
        )

    @classmethod
    def empty(cls, n: int = 0) -> Features:
        return cls(
            index=np.zeros(n, np.int64),
            error=[None] * n,
            height=np.zeros(n, np.int32),
            width=np.zeros(n, np.int32),
            lum_max=np.zeros(n, np.float32),
            lum_std=np.zeros(n, np.float32),
            diff_prev=np.full(n, np.nan, np.float32),
            blocks=np.zeros((n, *GRID, BLOCK_FEATURES), np.float16),
        )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.error], dtype=bool)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def decode_file(path: str, frame: int) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; :class:`SourceError` naming the file
    and frame when it is missing, unreadable, corrupt or truncated."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SourceError(f"{path}: frame {frame}: image file is missing") from None
    except OSError as e:
        raise SourceError(f"{path}: frame {frame}: image file is not readable ({e})") from None
    return decode_bytes(data, path, frame)


def decode_bytes(data: bytes, where: str, frame: int) -> np.ndarray:
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


# ---------------------------------------------------------------------------
# Features of one decoded image
# ---------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def sample(image: np.ndarray) -> np.ndarray:
    """A fixed-size (SAMPLE) float32 RGB sample of the image, by striding."""
    h, w = image.shape[:2]
    rows = (np.arange(SAMPLE[0]) * h // SAMPLE[0] + h // (2 * SAMPLE[0])).clip(0, h - 1)
    cols = (np.arange(SAMPLE[1]) * w // SAMPLE[1] + w // (2 * SAMPLE[1])).clip(0, w - 1)
    return image[rows[:, None], cols[None, :]].astype(np.float32)


def block_descriptors(s: np.ndarray, lum: np.ndarray | None = None) -> np.ndarray:
    """Per block of GRID: mean colour, luminance spread, edge energy, flat share —
    scaled to roughly [0, 1] so that one distance weighs them alike."""
    gh, gw = GRID
    bh, bw = SAMPLE[0] // gh, SAMPLE[1] // gw
    if lum is None:
        lum = s @ _LUMA
    dx = np.abs(np.diff(lum, axis=1, append=lum[:, -1:]))
    dy = np.abs(np.diff(lum, axis=0, append=lum[-1:, :]))
    edge = dx + dy
    colour = s.reshape(gh, bh, gw, bw, 3).mean(axis=(1, 3)) / 255.0
    lb = lum.reshape(gh, bh, gw, bw)
    spread = lb.std(axis=(1, 3)) / 64.0
    eb = edge.reshape(gh, bh, gw, bw)
    energy = np.minimum(eb.mean(axis=(1, 3)) / 32.0, 2.0)
    flat = (eb < 1.0).mean(axis=(1, 3))
    return np.concatenate(
        [colour, spread[..., None], energy[..., None], flat[..., None]], axis=-1
    ).astype(np.float16)


def thumb(lum: np.ndarray) -> np.ndarray:
    th, tw = THUMB
    return lum.reshape(th, SAMPLE[0] // th, tw, SAMPLE[1] // tw).mean(axis=(1, 3))


@dataclass(slots=True)
class _One:
    lum_max: float
    lum_std: float
    thumb: np.ndarray
    blocks: np.ndarray


def describe(image: np.ndarray) -> _One:
    s = sample(image)
    lum = s @ _LUMA
    return _One(
        lum_max=float(lum.max()),
        lum_std=float(lum.std()),
        thumb=thumb(lum),
        blocks=block_descriptors(s, lum),
    )


# ---------------------------------------------------------------------------
# Runs of frames
# ---------------------------------------------------------------------------


def _features(
    items: Sequence[tuple[int, Callable[[], np.ndarray]]],
) -> tuple[Features, np.ndarray | None, np.ndarray | None]:
    """Features of consecutive frames, plus the first and last thumbnails so that
    a caller joining runs can continue the frozen check across their seam."""
    n = len(items)
    out = Features.empty(n)
    prev: np.ndarray | None = None
    first: np.ndarray | None = None
    for k, (index, load) in enumerate(items):
        out.index[k] = index
        try:
            image = load()
        except SourceError as e:
            out.error[k] = str(e)
            prev = None
            continue
        out.height[k], out.width[k] = image.shape[:2]
        d = describe(image)
        out.lum_max[k], out.lum_std[k] = d.lum_max, d.lum_std
        out.blocks[k] = d.blocks
        if k == 0:
            first = d.thumb
        if prev is not None:
            out.diff_prev[k] = float(np.abs(d.thumb - prev).mean())
        prev = d.thumb
    return out, first, prev


class _FileLoad:
    """A picklable loader of one image file (a Frame's own loader is a closure)."""

    __slots__ = ("index", "path")

    def __init__(self, path: str, index: int) -> None:
        self.path, self.index = path, index

    def __call__(self) -> np.ndarray:
        return decode_file(self.path, self.index)


def _file_chunk(
    chunk: list[tuple[int, str]],
) -> tuple[Features, np.ndarray | None, np.ndarray | None]:
    """Worker entry point: only paths cross the process boundary."""
    return _features([(i, _FileLoad(p, i)) for i, p in chunk])


def file_backed(frame: Frame) -> bool:
    """Whether the frame's pixels are an image file of their own (so a worker
    process can decode it from its path)."""
    return frame.where.lower().endswith(_IMAGE_SUFFIXES) and "[" not in frame.where


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def make_executor(workers: int) -> Executor | None:
    n = workers or default_workers()
    if n <= 1:
        return None
    # fork: workers start in milliseconds and scripts need no ``__main__`` guard;
    # they only decode and run numpy, so threads of the parent do not matter.
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("fork"))


CHUNK = 48


def session_features(frames: Sequence[Frame], executor: Executor | None) -> Features:
    """Features of every frame of one session, in order."""
    if frames and executor is not None and all(file_backed(f) for f in frames):
        chunks = [
            [(f.index, f.where) for f in frames[i : i + CHUNK]]
            for i in range(0, len(frames), CHUNK)
        ]
        return _join(list(executor.map(_file_chunk, chunks)))
    items: list[tuple[int, Callable[[], np.ndarray]]] = [
        (f.index, _FileLoad(f.where, f.index) if file_backed(f) else f.image) for f in frames
    ]
    return _features(items)[0]


def _join(parts: list[tuple[Features, np.ndarray | None, np.ndarray | None]]) -> Features:
    for (_, _, last), (feats, first, _) in itertools.pairwise(parts):
        if last is not None and first is not None:
            feats.diff_prev[0] = float(np.abs(first - last).mean())
    return Features.concat([p[0] for p in parts])
