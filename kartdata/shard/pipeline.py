"""The entry point: :func:`shard` locks the dataset, cleans up what a killed
run left, hands new sessions to the chosen engine, merges what it reports and
writes the manifest once, after every shard of the run is complete and synced.

A run that fails or is killed leaves the previous manifest as it was: its
shards are never named by a manifest and the next run deletes them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kartdata import fs
from kartdata.errors import DatasetError, fault
from kartdata.manifest import MANIFEST_FILE, SHARDS_DIR, Encoding, Manifest, cleanup
from kartdata.schema import ClassThresholds
from kartdata.shard.config import ShardConfig, ShardReport, check_encoding
from kartdata.shard.engine import SessionTask, ShardJob, engine
from kartdata.shard.histogram import merge_histograms
from kartdata.sources import Source, discover
from kartdata.sources.base import legacy_keys, recording_of


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


def new_sessions(found: list[Source], manifest: Manifest, report: ShardReport) -> list[SessionTask]:
    """The recordings to shard: those whose key the dataset does not hold yet
    (the rest go in ``report.sessions_skipped``).

    A recording whose frames changed since it was sharded (same recording part
    of its key, new content part) is refused, the whole run with it: a dataset
    holds one version of each recording — two would put near-copies of the same
    frames on both sides of a split, and shards cannot drop a session's records
    to replace it. Sessions sharded before keys covered the frames match by
    their old key and are skipped as before.
    """
    known = manifest.session_keys()
    recordings = {recording_of(s.key): (s.key, s.source) for s in manifest.sessions}
    todo: list[SessionTask] = []
    for src in found:
        key = src.key
        if key in known or any(k in known for k in legacy_keys(key)):
            report.sessions_skipped.append(str(src.path))
            continue
        old = recordings.get(recording_of(key))
        if old is not None:
            raise DatasetError(
                f"{src.path}: this recording changed since it was sharded (session {old[0]} "
                f"from {old[1]}; its frames now make {key}); nothing was added — a dataset "
                "holds one version of a recording, so shard the new version into a new dataset"
            )
        known.add(key)
        recordings[recording_of(key)] = (key, str(src.path))
        todo.append(SessionTask(str(src.path), key))
    return todo


def shard(
    sources: list[str | Path], out: str | Path, config: ShardConfig | None = None
) -> ShardReport:
    """Shard every recording under ``sources`` not yet in the dataset ``out``.

    A system fault on the way (a full disk, a read-only filesystem, a refused
    permission, memory run out) is one :class:`DatasetError` line naming the
    path; the dataset is then as it was, its manifest untouched."""
    config = config or ShardConfig()
    dataset = str(out)
    try:
        return _shard(sources, dataset, config)
    except (OSError, MemoryError) as e:
        raise fault(e, dataset) from None


def _shard(sources: list[str | Path], dataset: str, config: ShardConfig) -> ShardReport:
    started = time.perf_counter()
    fs.makedirs(fs.join(dataset, SHARDS_DIR))
    with dataset_lock(dataset):
        manifest, encoding, classes = resolve_options(dataset, config)
        cleanup(dataset, manifest)
        found = discover(list(sources), trust_pickle=config.trust_pickle)
        report = ShardReport(dataset=dataset, generation=manifest.generation)
        todo = new_sessions(found, manifest, report)
        if not todo:
            report.seconds = time.perf_counter() - started
            return report
        generation = manifest.generation + 1
        job = ShardJob(
            dataset=dataset,
            generation=generation,
            encoding=encoding,
            classes=classes,
            target_bytes=config.target_shard_bytes,
            keep_flagged=config.keep_flagged,
            validate=config.validate,
            trust_pickle=config.trust_pickle,
            address=config.address,
        )
        workers = config.workers
        if dataset.startswith("ram://"):
            # TensorFlow's in-memory filesystem is private to a process:
            # only this one can write shards the manifest here will name.
            if config.engine == "ray":
                raise DatasetError(
                    f"{dataset}: ram:// is private to one process; Ray "
                    "workers cannot write it (use a shared path)"
                )
            workers = 0
        bar = _progress_bar(config.progress)
        try:
            result = engine(config.engine)(job, todo, workers, bar)
        except BaseException:
            _clean_after_failure(dataset)
            raise
        finally:
            bar(None)
        order = {t.key: i for i, t in enumerate(todo)}
        sessions = sorted(result.sessions, key=lambda r: order[r.info.key])
        shards = sorted(result.shards, key=lambda s: s.path)
        try:
            if not fs.is_remote(dataset):
                fs.fsync_dir(fs.join(dataset, SHARDS_DIR))
            hist = manifest.histogram
            for r in sessions:
                hist = merge_histograms(hist, r.histogram)
            manifest.sessions.extend(r.info for r in sessions)
            manifest.shards.extend(shards)
            manifest.histogram = hist
            manifest.generation = generation
            manifest.save(dataset)
        except BaseException:  # e.g. the disk filled up writing the manifest
            _clean_after_failure(dataset)
            raise

    report.generation = generation
    report.sessions_added = [t.path for t in todo]
    report.frames_written = sum(r.info.frames_written for r in sessions)
    for r in sessions:
        for reason, n in r.info.excluded.items():
            report.frames_excluded[reason] = report.frames_excluded.get(reason, 0) + n
    report.shards_written = len(shards)
    report.bytes_written = sum(s.bytes for s in shards)
    report.seconds = time.perf_counter() - started
    return report


def _clean_after_failure(dataset: str) -> None:
    """Remove what a failed run wrote: every file the manifest on disk does not
    name (read again: whether the failure came before or after its rename, it
    is the truth). If even that fails (a read-only disk), the next run's
    clean-up does it, and the run's own error is the one to show."""
    with contextlib.suppress(OSError, DatasetError):
        if fs.exists(fs.join(dataset, MANIFEST_FILE)):
            on_disk = Manifest.load(dataset)
        else:
            on_disk = Manifest(encoding=Encoding(), classes=ClassThresholds())
        cleanup(dataset, on_disk)


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
