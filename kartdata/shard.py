"""Recordings → compressed TFRecord shards grouped by stratum, plus the manifest.

Two layers, kept apart so that another engine (Ray, issue 9) can reuse the first:

- the per-session work — :func:`shard_session` streams one recording through
  :class:`StratumWriters` (one open shard per stratum, rotated at a target size,
  each shard written under a temporary name, synced, then renamed);
- the scheduling — :func:`shard` locks the dataset, cleans up what a killed run
  left, hands new sessions to persistent worker processes (or runs them in this
  process with ``workers=0``), merges what they report and writes the manifest
  once, after every shard of the run is complete and synced.

A run that fails or is killed leaves the previous manifest as it was: its
shards are never named by a manifest and the next run deletes them.

Workers never import TensorFlow (records and files are written by
:mod:`kartdata.tfrecord`), so each stays at tens of MB and starts in well under
a second.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kartdata import fs
from kartdata.errors import DatasetError, KartError, SourceError
from kartdata.manifest import (
    COMPRESSION_SUFFIX,
    MANIFEST_FILE,
    SHARDS_DIR,
    Encoding,
    Manifest,
    SessionInfo,
    ShardInfo,
    cleanup,
    index_path_for,
)
from kartdata.schema import (
    BUTTONS,
    CONTEXT_RADIUS,
    INDEX_COLUMNS,
    PAD_FIELDS,
    STRATA,
    TAG_SEPARATOR,
    ClassThresholds,
    Record,
    encode_record,
    is_recovery,
    stratum_name,
)
from kartdata.sources import discover, open_source
from kartdata.sources.base import Frame, Source
from kartdata.tfrecord import TFRecordWriter, check_compression

#: A step in capture time longer than this (or frame indexes that are not
#: consecutive) starts a new segment: neighbour context never reaches across
#: it, the segment's edge is replicated instead, as at the session's ends.
SEGMENT_GAP_NS = 2 * 10**9
#: Bins of the manifest's x / y histograms.
HISTOGRAM_EDGES: tuple[float, ...] = tuple(np.round(np.linspace(-1.0, 1.0, 21), 6).tolist())
#: Test hook: ``"N:PATH"`` makes a worker create PATH after writing its N-th
#: record and then wait to be killed (the kill -9 test needs a known moment).
PAUSE_ENV = "KARTDATA_SHARD_PAUSE_AFTER"
_PROGRESS_EVERY = 64


# ---------------------------------------------------------------------------
# Configuration and report
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardConfig:
    """How to shard. ``encoding`` / ``classes`` left as ``None`` take the
    existing dataset's (or the defaults for a new one); given explicitly, they
    must match an existing dataset's."""

    encoding: Encoding | None = None
    #: Rotate a shard once this many record bytes (before compression) are in it.
    target_shard_bytes: int = 128 << 20
    classes: ClassThresholds | None = None
    #: Worker processes; 0 runs everything in this process.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Keep frames the validator flagged (their reason goes in the index).
    keep_flagged: bool = False
    #: Run the validator (kartdata.validate) and exclude what it flags.
    validate: bool = True
    trust_pickle: bool = False
    progress: bool = False
    #: ``"local"`` (worker processes on this machine) or ``"ray"`` (Ray actors,
    #: kartdata.shard_ray); the per-session work is the same, only the
    #: scheduling differs. With Ray, ``workers`` <= 0 means one per cluster CPU.
    engine: str = "local"
    #: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
    #: ``None`` joins an already initialised Ray or starts a local one.
    address: str | None = None


@dataclass
class ShardReport:
    dataset: str
    generation: int
    sessions_added: list[str] = field(default_factory=list)
    sessions_skipped: list[str] = field(default_factory=list)
    frames_written: int = 0
    frames_excluded: dict[str, int] = field(default_factory=dict)
    shards_written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: added {len(self.sessions_added)} session(s), "
            f"skipped {len(self.sessions_skipped)} already present"
        ]
        if self.sessions_added:
            rate = self.frames_written / self.seconds if self.seconds else 0.0
            lines.append(
                f"generation {self.generation}: {self.frames_written} frames in "
                f"{self.shards_written} shard(s), {self.bytes_written / 1e6:.1f} MB, "
                f"{self.seconds:.1f} s ({rate:.0f} frames/s)"
            )
        if self.frames_excluded:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.frames_excluded.items()))
            lines.append(f"excluded by validation: {reasons}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Largest size within the box with the same aspect; never larger than the input."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_to_fit(image: np.ndarray, encoding: Encoding) -> np.ndarray:
    """The pixels as stored (before JPEG): scaled down to fit the encoding's box."""
    from PIL import Image

    h, w = image.shape[:2]
    size = fit_size(w, h, encoding.max_width, encoding.max_height)
    if size == (w, h):
        return image
    # reducing_gap=1: box-reduce by the integer factor first (exact and fast for
    # the common 640x480 → 320x240), then bilinear for any remainder.
    im = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
    return np.asarray(im)


def encode_image(image: np.ndarray, encoding: Encoding) -> tuple[bytes, int, int]:
    """JPEG bytes, height and width of a frame as stored."""
    from PIL import Image

    stored = resize_to_fit(image, encoding)
    buf = io.BytesIO()
    # optimize: per-image Huffman tables, ~15 % smaller for a few % more time
    Image.fromarray(stored).save(buf, format="JPEG", quality=encoding.quality, optimize=True)
    return buf.getvalue(), stored.shape[0], stored.shape[1]


def check_encoding(encoding: Encoding) -> Encoding:
    if encoding.image != "jpeg":
        raise DatasetError(f"image encoding {encoding.image!r} is not supported (only jpeg)")
    if not 1 <= encoding.quality <= 100:
        raise DatasetError(f"JPEG quality {encoding.quality} is not in 1..100")
    if encoding.max_width < 1 or encoding.max_height < 1:
        raise DatasetError(f"storage box {encoding.max_width}x{encoding.max_height} is empty")
    try:
        check_compression(encoding.compression)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    return encoding


# ---------------------------------------------------------------------------
# Neighbour context
# ---------------------------------------------------------------------------


def _breaks(prev: Frame, cur: Frame) -> bool:
    return (
        cur.index != prev.index + 1 or cur.t_ns < prev.t_ns or cur.t_ns - prev.t_ns > SEGMENT_GAP_NS
    )


def with_context(
    frames: Iterable[Frame], radius: int = CONTEXT_RADIUS
) -> Iterator[tuple[Frame, list[float]]]:
    """Each frame with the pads of frames t-R … t+R flattened (row-major), edges
    of each segment replicated. Holds at most 2R+2 frames."""
    buf: list[Frame] = []
    vecs: list[list[float]] = []
    nxt = 0

    def emit(i: int) -> tuple[Frame, list[float]]:
        last = len(vecs) - 1
        ctx: list[float] = []
        for k in range(i - radius, i + radius + 1):
            ctx.extend(vecs[min(max(k, 0), last)])
        return buf[i], ctx

    prev: Frame | None = None
    for f in frames:
        if prev is not None and _breaks(prev, f):
            while nxt < len(buf):
                yield emit(nxt)
                nxt += 1
            buf, vecs, nxt = [], [], 0
        buf.append(f)
        vecs.append(f.pad.to_vector())
        while nxt + radius < len(buf):
            yield emit(nxt)
            nxt += 1
        drop = nxt - radius
        if drop > 0:
            del buf[:drop], vecs[:drop]
            nxt -= drop
        prev = f
    while nxt < len(buf):
        yield emit(nxt)
        nxt += 1


# ---------------------------------------------------------------------------
# Histograms
# ---------------------------------------------------------------------------


def empty_histogram() -> dict[str, Any]:
    zeros = [0] * (len(HISTOGRAM_EDGES) - 1)
    return {
        "x": {"edges": list(HISTOGRAM_EDGES), "counts": list(zeros)},
        "y": {"edges": list(HISTOGRAM_EDGES), "counts": list(zeros)},
        "buttons": dict.fromkeys(BUTTONS, 0),
    }


def merge_histograms(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = empty_histogram()
    for h in (a, b):
        if not h:
            continue
        for axis in ("x", "y"):
            if list(h[axis]["edges"]) != list(HISTOGRAM_EDGES):
                raise DatasetError("manifest histogram has different bin edges; cannot merge")
            out[axis]["counts"] = [
                p + q for p, q in zip(out[axis]["counts"], h[axis]["counts"], strict=True)
            ]
        for name, n in h["buttons"].items():
            out["buttons"][name] = out["buttons"].get(name, 0) + int(n)
    return out


class _HistogramAcc:
    def __init__(self) -> None:
        n = len(HISTOGRAM_EDGES) - 1
        self.x = np.zeros(n, np.int64)
        self.y = np.zeros(n, np.int64)
        self.buttons = np.zeros(len(BUTTONS), np.int64)
        self._edges = np.asarray(HISTOGRAM_EDGES)

    def add(self, pad: list[float]) -> None:
        for axis, v in ((self.x, pad[0]), (self.y, pad[1])):
            # right-closed last bin, like np.histogram
            axis[min(int(np.searchsorted(self._edges, v, side="right")) - 1, len(axis) - 1)] += 1
        self.buttons += np.asarray(pad[2:]) >= 0.5

    def to_json(self) -> dict[str, Any]:
        return {
            "x": {"edges": list(HISTOGRAM_EDGES), "counts": self.x.tolist()},
            "y": {"edges": list(HISTOGRAM_EDGES), "counts": self.y.tolist()},
            "buttons": dict(zip(BUTTONS, self.buttons.tolist(), strict=True)),
        }


# ---------------------------------------------------------------------------
# Shard files
# ---------------------------------------------------------------------------


def shard_name(stratum: str, generation: int, worker: int, seq: int, compression: str) -> str:
    """Relative path of a shard: sorts by stratum, then generation, worker, sequence."""
    return (
        f"{SHARDS_DIR}/{stratum}-g{generation:05d}-w{worker:02d}-{seq:05d}"
        f"{COMPRESSION_SUFFIX[compression]}"
    )


class ShardFile:
    """One shard and its index sidecar, both under temporary names until
    :meth:`close` syncs and renames them."""

    def __init__(self, dataset: str, rel: str, stratum: str, generation: int, compression: str):
        self.dataset, self.rel, self.stratum, self.generation = dataset, rel, stratum, generation
        self.index_rel = index_path_for(rel)
        self._final = fs.join(dataset, rel)
        self._index_final = fs.join(dataset, self.index_rel)
        self._records = TFRecordWriter(self._final + ".tmp", compression)
        self._index_cm = fs.open_file(self._index_final + ".tmp", "wb")
        self._index_raw = self._index_cm.__enter__()
        self._index_gz = gzip.GzipFile(fileobj=self._index_raw, mode="wb", mtime=0)
        self._index_text = io.TextIOWrapper(self._index_gz, encoding="utf-8", newline="")
        self._index = csv.writer(self._index_text, lineterminator="\n")
        self._index.writerow(INDEX_COLUMNS)

    @property
    def frames(self) -> int:
        return self._records.records

    @property
    def raw_bytes(self) -> int:
        return self._records.raw_bytes

    def write(self, record: bytes, row: list[Any]) -> None:
        self._index.writerow([*row, self._records.records])
        self._records.write(record)

    def close(self) -> ShardInfo:
        sha = self._records.close()
        self._index_text.flush()
        self._index_text.detach()
        self._index_gz.close()
        self._index_raw.flush()
        if not fs.is_remote(self._final):
            os.fsync(self._index_raw.fileno())
        self._index_cm.__exit__(None, None, None)
        fs.rename(self._final + ".tmp", self._final)
        fs.rename(self._index_final + ".tmp", self._index_final)
        return ShardInfo(
            path=self.rel,
            stratum=self.stratum,
            frames=self._records.records,
            bytes=self._records.bytes,
            sha256=sha,
            index=self.index_rel,
            generation=self.generation,
        )

    def abort(self) -> None:
        self._records.abort()
        with contextlib.suppress(Exception):
            self._index_cm.__exit__(None, None, None)
        for p in (self._final + ".tmp", self._index_final + ".tmp"):
            with contextlib.suppress(OSError):
                fs.remove(p)


class StratumWriters:
    """One worker's open shards, one per stratum, each rotated at the target size."""

    def __init__(
        self,
        dataset: str,
        *,
        generation: int,
        worker: int,
        compression: str,
        target_bytes: int,
    ) -> None:
        self.dataset, self.generation, self.worker = dataset, generation, worker
        self.compression, self.target_bytes = compression, target_bytes
        self._open: dict[str, ShardFile] = {}
        self._seq: dict[str, int] = dict.fromkeys(STRATA, 0)
        self.finished: list[ShardInfo] = []
        self.records = 0
        self._pause = _pause_hook()

    def write(self, stratum: str, record: bytes, row: list[Any]) -> None:
        shard = self._open.get(stratum)
        if shard is None:
            rel = shard_name(
                stratum, self.generation, self.worker, self._seq[stratum], self.compression
            )
            self._seq[stratum] += 1
            shard = self._open[stratum] = ShardFile(
                self.dataset, rel, stratum, self.generation, self.compression
            )
        shard.write(record, row)
        self.records += 1
        if self._pause is not None and self.records == self._pause[0]:
            _pause_forever(self._pause[1])  # with this shard still open: mid-write
        if shard.raw_bytes >= self.target_bytes:
            self.finished.append(self._open.pop(stratum).close())

    def close(self) -> list[ShardInfo]:
        """Finish every open shard; returns all shards this writer completed."""
        for stratum in sorted(self._open):
            self.finished.append(self._open.pop(stratum).close())
        if self.finished and not fs.is_remote(self.dataset):
            fs.fsync_dir(fs.join(self.dataset, SHARDS_DIR))
        return list(self.finished)

    def abort(self) -> None:
        for shard in self._open.values():
            shard.abort()
        self._open.clear()


def _pause_hook() -> tuple[int, str] | None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return None
    n, _, path = spec.partition(":")
    return int(n), path


def _pause_forever(flag: str) -> None:
    fs.atomic_write(flag, str(os.getpid()).encode())
    import threading

    threading.Event().wait()


# ---------------------------------------------------------------------------
# One session
# ---------------------------------------------------------------------------


@dataclass
class SessionResult:
    info: SessionInfo
    histogram: dict[str, Any]


def frame_verdicts(source: Source, *, in_worker: bool = False) -> dict[int, str]:
    """Frame index → reason the validator flags it (the one call into issue 3):
    verdicts ``kartdata validate`` stored for this recording, else computed now.
    In a shard worker the validator runs in that process (sessions are already
    spread over the cores; a pool per worker would only oversubscribe them)."""
    from kartdata.validate import verdicts
    from kartdata.validate.config import ValidateConfig

    config = None
    if in_worker and verdicts.load(source.key) is None:
        config = ValidateConfig(workers=1)
    return verdicts.frame_verdicts(source, config=config)


def shard_session(
    source: Source,
    writers: StratumWriters,
    *,
    encoding: Encoding,
    classes: ClassThresholds,
    verdicts: Mapping[int, str],
    keep_flagged: bool = False,
    key: str | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> SessionResult:
    """Stream one recording into ``writers``; returns what the manifest records."""
    meta = source.meta
    key = key or source.key
    excluded: dict[str, int] = {}
    strata: dict[str, int] = {}
    hist = _HistogramAcc()
    total = written = pending = 0
    first_size: tuple[int, int] | None = None
    for frame, context in with_context(source.frames(), CONTEXT_RADIUS):
        total += 1
        verdict = verdicts.get(frame.index, "")
        if verdict and not keep_flagged:
            excluded[verdict] = excluded.get(verdict, 0) + 1
            continue
        image = frame.image()
        size = (image.shape[1], image.shape[0])
        if first_size is None:
            first_size = size
        elif size != first_size:
            raise SourceError(
                f"{frame.where}: frame {frame.index}: image is {size[0]}x{size[1]}, but the "
                f"session's first frame is {first_size[0]}x{first_size[1]} (mixed image sizes)"
            )
        jpeg, height, width = encode_image(image, encoding)
        pad = frame.pad.to_vector()
        stratum = stratum_name(classes.classify(pad[0]), is_recovery(frame.tags))
        record = encode_record(
            Record(
                image=jpeg,
                height=height,
                width=width,
                session=key,
                track=meta.track,
                frame=frame.index,
                t_ns=frame.t_ns,
                pad=tuple(pad),
                context=tuple(context),
                stratum=stratum,
                tags=frame.tags,
            )
        )
        row = [key, meta.track, frame.index, frame.t_ns, *_csv_pad(pad)]
        row += [stratum, TAG_SEPARATOR.join(frame.tags), verdict]
        writers.write(stratum, record, row)
        strata[stratum] = strata.get(stratum, 0) + 1
        hist.add(pad)
        written += 1
        pending += 1
        if on_frames and pending >= _PROGRESS_EVERY:
            on_frames(pending)
            pending = 0
    if on_frames and pending:
        on_frames(pending)
    info = SessionInfo(
        key=key,
        layout=source.layout,
        source=str(Path(source.path).resolve()),
        game=meta.game,
        track=meta.track,
        player=meta.player,
        width=first_size[0] if first_size else meta.width,
        height=first_size[1] if first_size else meta.height,
        fps=meta.fps,
        tags=tuple(meta.tags),
        frames_total=total,
        frames_written=written,
        excluded=excluded,
        strata=strata,
        generation=writers.generation,
        extra=dict(meta.extra),
    )
    return SessionResult(info, hist.to_json())


def _csv_pad(pad: list[float]) -> list[float | int]:
    return [v if name in ("x", "y") else int(v) for name, v in zip(PAD_FIELDS, pad, strict=True)]


# ---------------------------------------------------------------------------
# Scheduling: the local engine
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What a worker needs, picklable for spawn."""

    dataset: str
    generation: int
    encoding: Encoding
    classes: ClassThresholds
    target_bytes: int
    keep_flagged: bool
    validate: bool
    trust_pickle: bool


def _one_session(
    job: _Job,
    path: str,
    key: str,
    writers: StratumWriters,
    on_frames: Callable[[int], None],
    *,
    in_worker: bool,
) -> SessionResult:
    source = open_source(path, trust_pickle=job.trust_pickle)
    verdicts = frame_verdicts(source, in_worker=in_worker) if job.validate else {}
    return shard_session(
        source,
        writers,
        encoding=job.encoding,
        classes=job.classes,
        verdicts=verdicts,
        keep_flagged=job.keep_flagged,
        key=key,
        on_frames=on_frames,
    )


def _writers(job: _Job, worker: int) -> StratumWriters:
    return StratumWriters(
        job.dataset,
        generation=job.generation,
        worker=worker,
        compression=job.encoding.compression,
        target_bytes=job.target_bytes,
    )


def _worker_main(job: _Job, worker: int, tasks: Any, results: Any, parent: int) -> None:
    """A persistent worker: sessions from ``tasks`` until a ``None``."""
    writers = _writers(job, worker)
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the driver is gone (killed): stop
                    writers.abort()
                    return
                continue
            if task is None:
                break
            path, key = task
            res = _one_session(
                job,
                path,
                key,
                writers,
                lambda n: results.put(("progress", worker, n)),
                in_worker=True,
            )
            results.put(("session", worker, res))
        results.put(("done", worker, writers.close()))
    except KartError as e:
        writers.abort()
        results.put(("error", worker, (type(e).__name__, str(e))))
    except BaseException:
        writers.abort()
        results.put(("crash", worker, traceback.format_exc()))


def _error_from(kind: str, message: str) -> KartError:
    from kartdata import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, KartError):
        return cls(message)
    return SourceError(message)


def _run_inline(
    job: _Job, todo: list[tuple[str, str]], on_frames: Callable[[int], None]
) -> tuple[list[SessionResult], list[ShardInfo]]:
    writers = _writers(job, 0)
    results: list[SessionResult] = []
    try:
        for path, key in todo:
            results.append(_one_session(job, path, key, writers, on_frames, in_worker=False))
        return results, writers.close()
    except BaseException:
        writers.abort()
        raise


def _run_processes(
    job: _Job, todo: list[tuple[str, str]], workers: int, on_frames: Callable[[int], None]
) -> tuple[list[SessionResult], list[ShardInfo]]:
    # spawn, not fork: a forked child of a process that has TensorFlow loaded
    # (a notebook, a test run) inherits its threads' locks and can hang.
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for t in todo:
        tasks.put(t)
    for _ in range(workers):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(job, w, tasks, results, os.getpid()),
            name=f"kartdata-shard-w{w:02d}",
            daemon=True,
        )
        for w in range(workers)
    ]
    sessions: list[SessionResult] = []
    shards: list[ShardInfo] = []
    done: set[int] = set()
    try:
        for p in procs:
            p.start()
        while len(done) < workers:
            try:
                kind, worker, payload = results.get(timeout=0.5)
            except queue.Empty:
                for w, p in enumerate(procs):
                    if w not in done and not p.is_alive() and p.exitcode not in (0, None):
                        raise DatasetError(
                            f"shard worker {w} died (exit code {p.exitcode}); nothing of this "
                            "run was added to the dataset"
                        ) from None
                continue
            if kind == "progress":
                on_frames(payload)
            elif kind == "session":
                sessions.append(payload)
            elif kind == "done":
                shards.extend(payload)
                done.add(worker)
            elif kind == "error":
                raise _error_from(*payload)
            else:
                raise RuntimeError(f"shard worker {worker} failed:\n{payload}")
        return sessions, shards
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=30)
        tasks.close()
        results.close()


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def dataset_lock(dataset: str) -> Iterator[None]:
    """Exclusive lock on a local dataset for the length of a run (released by
    the kernel if the process dies)."""
    if fs.is_remote(dataset):
        yield
        return
    import fcntl

    fd = os.open(os.path.join(dataset, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(
                f"{dataset}: another `kartdata shard` is writing this dataset"
            ) from None
        yield
    finally:
        os.close(fd)


def resolve_options(
    dataset: str, config: ShardConfig
) -> tuple[Manifest, Encoding, ClassThresholds]:
    """The dataset's manifest (a new empty one if there is none) and the encoding
    and classes to use; an explicit option that contradicts the dataset is an error."""
    if fs.exists(fs.join(dataset, MANIFEST_FILE)):
        manifest = Manifest.load(dataset)
        for name, given, have in (
            ("encoding", config.encoding, manifest.encoding),
            ("class thresholds", config.classes, manifest.classes),
        ):
            if given is not None and given != have:
                raise DatasetError(
                    f"{dataset}: the dataset's {name} is {have}, not {given}; a dataset keeps "
                    "one setting (shard into a new dataset to change it)"
                )
    else:
        manifest = Manifest(
            encoding=config.encoding or Encoding(), classes=config.classes or ClassThresholds()
        )
    return manifest, check_encoding(manifest.encoding), manifest.classes


def encoding_with(dataset: str, **overrides: Any) -> Encoding | None:
    """The encoding a run would use with only ``overrides`` (non-None) given:
    the existing dataset's (or the default) with those fields replaced; ``None``
    when nothing is given (for the CLI, whose options are all optional)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return None
    base = (
        Manifest.load(dataset).encoding
        if fs.exists(fs.join(dataset, MANIFEST_FILE))
        else Encoding()
    )
    return replace(base, **given)


def shard(
    sources: list[str | Path], out: str | Path, config: ShardConfig | None = None
) -> ShardReport:
    """Shard every recording under ``sources`` not yet in the dataset ``out``."""
    config = config or ShardConfig()
    dataset = str(out)
    started = time.perf_counter()
    fs.makedirs(fs.join(dataset, SHARDS_DIR))
    with dataset_lock(dataset):
        manifest, encoding, classes = resolve_options(dataset, config)
        cleanup(dataset, manifest)
        found = discover(list(sources), trust_pickle=config.trust_pickle)
        known = manifest.session_keys()
        report = ShardReport(dataset=dataset, generation=manifest.generation)
        todo: list[tuple[str, str]] = []
        for src in found:
            key = src.key
            if key in known:
                report.sessions_skipped.append(str(src.path))
                continue
            known.add(key)
            todo.append((str(src.path), key))
        if not todo:
            report.seconds = time.perf_counter() - started
            return report
        generation = manifest.generation + 1
        job = _Job(
            dataset=dataset,
            generation=generation,
            encoding=encoding,
            classes=classes,
            target_bytes=config.target_shard_bytes,
            keep_flagged=config.keep_flagged,
            validate=config.validate,
            trust_pickle=config.trust_pickle,
        )
        bar = _progress_bar(config.progress)
        try:
            workers = min(max(0, config.workers), len(todo))
            if dataset.startswith("ram://"):
                # TensorFlow's in-memory filesystem is private to a process:
                # only this one can write shards the manifest here will name.
                if config.engine == "ray":
                    raise DatasetError(
                        f"{dataset}: ram:// is private to one process; Ray "
                        "workers cannot write it (use a shared path)"
                    )
                workers = 0
            if config.engine == "ray":
                from kartdata.shard_ray import run_ray

                results, shards = run_ray(job, todo, config.workers, bar, config.address)
            elif config.engine != "local":
                raise DatasetError(f"engine {config.engine!r} is not 'local' or 'ray'")
            elif workers == 0:
                results, shards = _run_inline(job, todo, bar)
            else:
                results, shards = _run_processes(job, todo, workers, bar)
        except BaseException:
            cleanup(dataset, manifest)
            raise
        finally:
            bar(None)
        order = {key: i for i, (_, key) in enumerate(todo)}
        results.sort(key=lambda r: order[r.info.key])
        shards.sort(key=lambda s: s.path)
        if not fs.is_remote(dataset):
            fs.fsync_dir(fs.join(dataset, SHARDS_DIR))
        hist = manifest.histogram
        for r in results:
            hist = merge_histograms(hist, r.histogram)
        manifest.sessions.extend(r.info for r in results)
        manifest.shards.extend(shards)
        manifest.histogram = hist
        manifest.generation = generation
        manifest.save(dataset)

    report.generation = generation
    report.sessions_added = [p for p, _ in todo]
    report.frames_written = sum(r.info.frames_written for r in results)
    for r in results:
        for reason, n in r.info.excluded.items():
            report.frames_excluded[reason] = report.frames_excluded.get(reason, 0) + n
    report.shards_written = len(shards)
    report.bytes_written = sum(s.bytes for s in shards)
    report.seconds = time.perf_counter() - started
    return report


def _progress_bar(enabled: bool) -> Callable[[int | None], None]:
    """``update(n)`` adds frames; ``update(None)`` closes."""
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(unit="frame", desc="shard", smoothing=0.1)

    def update(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return update
