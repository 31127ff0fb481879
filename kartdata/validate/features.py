"""Decoding frames and reducing each to the few numbers the checks need.

Decoding a 640x480 PNG is the cost of validation, so it happens once per frame,
in worker processes (one per core), with libspng where it is installed (about
twice as fast as Pillow's PNG decoder), and every feature is computed on a fixed
60x80 sample of the pixels. Workers return features, never pixels.

Everything after the decode is kept to a small fraction of it: the sample is a
strided copy, features are computed for a batch of frames at once in reused
buffers, and block and thumbnail means are matrix products rather than
reductions over short strided axes (docs/benchmarks.md has the costs per stage).
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from kartdata.errors import SourceError
from kartdata.sources.base import Frame, load_image_file

#: The sample every feature is computed on (rows, cols). At 120x160 the
#: detectors decided the same frames (docs/benchmarks.md) at three times the
#: cost after decoding.
SAMPLE = (60, 80)
#: The desktop detector's grid of blocks over the sample (rows, cols).
GRID = (6, 8)
#: Per-block descriptor: mean R, G, B; luminance spread; edge energy; flat share.
BLOCK_FEATURES = 6
#: The frozen check compares this coarser thumbnail of consecutive frames; a
#: cell averages 4x4 sampled pixels, so that the noise of a capture does not
#: hide a repeated image.
THUMB = (15, 20)
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
# Features of decoded images, a batch at a time
# ---------------------------------------------------------------------------

_LUMA = (0.299, 0.587, 0.114)
#: Frames whose features are computed together: large enough that numpy's
#: per-call overhead vanishes, small enough that the float copies stay in cache.
BATCH = 16


@functools.lru_cache(maxsize=16)
def _sample_axes(h: int, w: int) -> tuple[slice | np.ndarray, slice | np.ndarray]:
    """Row and column picks of the fixed SAMPLE grid (pixel centres of equal
    strips); a plain slice when the stride is even, which numpy copies
    without fancy indexing."""

    def axis(size: int, n: int) -> slice | np.ndarray:
        idx = (np.arange(n) * size // n + size // (2 * n)).clip(0, size - 1)
        step = np.diff(idx)
        if n > 1 and (step == step[0]).all() and step[0] > 0:
            return slice(int(idx[0]), int(idx[-1]) + 1, int(step[0]))
        return idx

    return axis(h, SAMPLE[0]), axis(w, SAMPLE[1])


def sample(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The fixed-size (SAMPLE) uint8 RGB sample of the image, by striding."""
    rows, cols = _sample_axes(*image.shape[:2])
    if out is None:
        out = np.empty((*SAMPLE, 3), np.uint8)
    if image.dtype != np.uint8 or image.strides[-2:] != (3, 1):  # e.g. a crop of a wider array
        image = np.ascontiguousarray(image, np.uint8)
    # a pixel as one 3-byte item: a strided copy of 19,200 items, not 57,600
    src, dst = image.view(_PIXEL), out.view(_PIXEL)
    picked = src[rows] if isinstance(rows, slice) else np.take(src, rows, axis=0)
    picked = picked[:, cols] if isinstance(cols, slice) else np.take(picked, cols, axis=1)
    np.copyto(dst, picked)
    return out


_PIXEL = np.dtype("V3")


def _means(size: int, groups: int, channels: int = 1) -> np.ndarray:
    """[size * channels, groups * channels]: averages runs of ``size // groups``
    items (interleaved channels kept apart) by one matrix product."""
    m = np.zeros((size * channels, groups * channels), np.float32)
    x = np.arange(size * channels)
    m[x, (x // channels) // (size // groups) * channels + x % channels] = groups / size
    return m


@functools.cache
def _col_means() -> dict[str, np.ndarray]:
    """Small averaging matrices over columns (pixels, or interleaved pixel
    channels): a matrix product, which numpy runs far faster than a reduction
    over a short strided axis."""
    return {
        "block": _means(SAMPLE[1], GRID[1]),
        "colour": _means(SAMPLE[1], GRID[1], 3) / 255.0,
        "thumb": _means(SAMPLE[1], THUMB[1]),
    }


def _grid_mean(x: np.ndarray, rows: int, cols: str) -> np.ndarray:
    """Means of ``x`` [n, SAMPLE rows, w] over ``rows`` bands of rows (a sum
    over a middle axis, which numpy vectorises) and then over column groups
    (a product with the ``cols`` matrix of :func:`_col_means`)."""
    n = len(x)
    bands = x.reshape(n, rows, SAMPLE[0] // rows, x.shape[-1]).sum(axis=2)
    bands *= rows / SAMPLE[0]
    return bands @ _col_means()[cols]


@dataclass(slots=True)
class Described:
    """Features of a batch of samples (arrays by position)."""

    lum_max: np.ndarray  # float32 [n]
    lum_std: np.ndarray  # float32 [n]
    thumbs: np.ndarray  # float32 [n, THUMB rows, THUMB cols]
    blocks: np.ndarray  # float16 [n, GRID rows, GRID cols, BLOCK_FEATURES]


class _Workspace(threading.local):
    """Float buffers reused from batch to batch: freshly allocated arrays of
    this size come from new pages each time, and the page faults cost more
    than the arithmetic."""

    def __init__(self) -> None:
        self.size = 0

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self._fit(n)
        return self.rgb[:n], self.planes[0, :n], self.planes[1, :n], self.planes[2, :n]

    def samples(self, n: int) -> np.ndarray:
        """The uint8 sample buffer of a batch (filled before :func:`describe`)."""
        self._fit(n)
        return self.u8[:n]

    def _fit(self, n: int) -> None:
        if n > self.size:
            self.size = max(n, BATCH)
            self.u8 = np.empty((self.size, *SAMPLE, 3), np.uint8)
            self.rgb = np.empty((self.size, *SAMPLE, 3), np.float32)
            self.planes = np.empty((3, self.size, *SAMPLE), np.float32)


_WORK = _Workspace()


def describe(samples: np.ndarray) -> Described:
    """Per sample (uint8 [n, SAMPLE rows, SAMPLE cols, 3]): brightest and spread
    of luminance, the frozen-check thumbnail, and per block of GRID: mean
    colour, luminance spread, edge energy, flat share — scaled to roughly
    [0, 1] so that one distance weighs them alike."""
    n = len(samples)

    def blockmean(x: np.ndarray) -> np.ndarray:
        return _grid_mean(x, GRID[0], "block")

    f, lum, tmp, edge = _WORK.get(n)
    np.copyto(f, samples, casting="unsafe")
    # elementwise, not a matmul: BLAS is no faster on a length-3 axis
    np.multiply(f[..., 0], _LUMA[0], out=lum)
    for c in (1, 2):
        np.multiply(f[..., c], _LUMA[c], out=tmp)
        lum += tmp
    colour = _grid_mean(f.reshape(n, SAMPLE[0], -1), GRID[0], "colour").reshape(n, *GRID, 3)
    # spread from the means of x and x² (values are at most 255, so float32
    # keeps the difference to well under the thresholds' resolution)
    m1 = blockmean(lum)
    m2 = blockmean(np.square(lum, out=tmp))
    spread = np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
    frame_var = np.maximum(m2.mean(axis=(1, 2)) - m1.mean(axis=(1, 2)) ** 2, 0.0)
    # edges: |horizontal| + |vertical| neighbour difference, zero past the border
    edge[:, :, -1] = 0.0
    np.subtract(lum[:, :, 1:], lum[:, :, :-1], out=edge[:, :, :-1])
    np.abs(edge, out=edge)
    dy = tmp[:, :-1]
    np.subtract(lum[:, 1:], lum[:, :-1], out=dy)
    edge[:, :-1] += np.abs(dy, out=dy)
    energy = np.minimum(blockmean(edge) / 32.0, 2.0)
    flat = blockmean(np.less(edge, 1.0, out=tmp))
    blocks = np.stack(
        [colour[..., 0], colour[..., 1], colour[..., 2], spread / 64.0, energy, flat], axis=-1
    ).astype(np.float16)
    return Described(
        lum_max=lum.max(axis=(1, 2)),
        lum_std=np.sqrt(frame_var).astype(np.float32),
        thumbs=_grid_mean(lum, THUMB[0], "thumb"),
        blocks=blocks,
    )


# ---------------------------------------------------------------------------
# Runs of frames
# ---------------------------------------------------------------------------


#: Features of a run of frames, with its first and last thumbnails.
Part = tuple[Features, np.ndarray | None, np.ndarray | None]


def _features(items: Sequence[tuple[int, Callable[[], np.ndarray]]]) -> Part:
    """Features of consecutive frames, plus the first and last thumbnails so that
    a caller joining runs can continue the frozen check across their seam."""
    n = len(items)
    out = Features.empty(n)
    thumbs = np.zeros((n, *THUMB), np.float32)
    buf = _WORK.samples(min(n, BATCH))
    for a in range(0, n, BATCH):
        batch = items[a : a + BATCH]
        got: list[int] = []
        for k, (index, load) in enumerate(batch, start=a):
            out.index[k] = index
            try:
                image = load()
            except SourceError as e:
                out.error[k] = str(e)
                continue
            out.height[k], out.width[k] = image.shape[:2]
            sample(image, buf[len(got)])
            got.append(k)
        if not got:
            continue
        d = describe(buf[: len(got)])
        out.lum_max[got], out.lum_std[got] = d.lum_max, d.lum_std
        out.blocks[got] = d.blocks
        thumbs[got] = d.thumbs
    ok = out.ok
    both = np.flatnonzero(ok[1:] & ok[:-1]) + 1
    if len(both):
        out.diff_prev[both] = np.abs(thumbs[both] - thumbs[both - 1]).mean(axis=(1, 2))
    first = thumbs[0] if n and ok[0] else None
    last = thumbs[-1] if n and ok[-1] else None
    return out, first, last


class _FileLoad:
    """A picklable loader of one image file (a Frame's own loader is a closure)."""

    __slots__ = ("index", "path")

    def __init__(self, path: str, index: int) -> None:
        self.path, self.index = path, index

    def __call__(self) -> np.ndarray:
        return load_image_file(self.path, self.index)


def _file_chunk(chunk: list[tuple[int, str]]) -> Part:
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
    # fork: workers start in milliseconds and scripts need no ``__main__`` guard.
    # It is safe with a multi-threaded parent (TensorFlow's thread pools, the
    # desktop scorer's threads) because a worker only reads files, decodes with
    # libspng and runs numpy: it never calls into code whose locks another
    # parent thread may have held at the fork. CPython holds its import lock
    # and glibc its malloc locks across fork(), and OpenBLAS shuts its thread
    # pool down before it (pthread_atfork). Workers inherit the one-BLAS-thread
    # limit that ``analyse`` sets around its work. test_fastpath.py runs the
    # pool from a process with TensorFlow's threads running.
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("fork"))


CHUNK = 48
#: Frames left for the last, small chunks: when the work runs out, a worker
#: waits at most for one small chunk of another's instead of a full one.
TAIL = 4 * BATCH


def chunk_bounds(n: int) -> list[tuple[int, int]]:
    """``[a, b)`` ranges covering ``n`` frames: chunks of ``CHUNK`` (large enough
    that a round trip to a worker costs little per frame), then the last
    ``TAIL`` frames in chunks of ``BATCH``."""
    head = max(0, n - TAIL)
    starts = [*range(0, head, CHUNK), *range(head, n, BATCH)]
    return list(itertools.pairwise([*starts, n]))


#: Called with each frame and its decoded pixels (see :func:`start_features`).
ImageObserver = Callable[[Frame, np.ndarray], None]


class _Observed:
    """A loader that also shows what it decoded to an :data:`ImageObserver`."""

    __slots__ = ("frame", "load", "observer")

    def __init__(
        self, load: Callable[[], np.ndarray], frame: Frame, observer: ImageObserver
    ) -> None:
        self.load, self.frame, self.observer = load, frame, observer

    def __call__(self) -> np.ndarray:
        image = self.load()
        self.observer(self.frame, image)
        return image


class PendingFeatures:
    """Features being computed by workers (or, without them, on :meth:`result`)."""

    def __init__(
        self,
        futures: list[Future[Part]] | None,
        frames: Sequence[Frame],
        on_image: ImageObserver | None = None,
    ) -> None:
        self._futures = futures
        self._frames = frames
        self._on_image = on_image

    def result(self) -> Features:
        if self._futures is not None:
            return _join([f.result() for f in self._futures])
        items: list[tuple[int, Callable[[], np.ndarray]]] = []
        for f in self._frames:
            load = _FileLoad(f.where, f.index) if file_backed(f) else f.image
            items.append((f.index, _Observed(load, f, self._on_image) if self._on_image else load))
        return _features(items)[0]


def start_features(
    frames: Sequence[Frame], executor: Executor | None, on_image: ImageObserver | None = None
) -> PendingFeatures:
    """Start computing the features of one session's frames; workers decode
    from paths, so only frames that are image files of their own go to them.

    ``on_image`` sees each frame's pixels as they are decoded, so that a caller
    needing them too (the sharder, validating as it goes) does not decode the
    frame a second time; the session is then decoded in this process."""
    if on_image is not None:
        return PendingFeatures(None, frames, on_image)
    if frames and executor is not None and all(file_backed(f) for f in frames):
        futures = [
            executor.submit(_file_chunk, [(f.index, f.where) for f in frames[a:b]])
            for a, b in chunk_bounds(len(frames))
        ]
        return PendingFeatures(futures, frames)
    return PendingFeatures(None, frames)


def _join(parts: list[Part]) -> Features:
    for (_, _, last), (feats, first, _) in itertools.pairwise(parts):
        if last is not None and first is not None:
            feats.diff_prev[0] = float(np.abs(first - last).mean())
    return Features.concat([p[0] for p in parts])
