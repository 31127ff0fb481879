"""Shard files: one shard and its index sidecar, and one worker's open shards.

Both are written under temporary names and renamed only once complete and
synced, so a name a manifest can refer to always holds a whole shard. Both are
context managers: leaving the block on an exception aborts, removing the
partial files (as webdataset's ``ShardWriter`` does); leaving it normally
closes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kartdata import fs
from kartdata.index import IndexWriter, index_path_for
from kartdata.manifest import COMPRESSION_SUFFIX, SHARDS_DIR, TEMP_SUFFIX, ShardInfo
from kartdata.schema import STRATA
from kartdata.tfrecord import TFRecordWriter


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
        self._records = TFRecordWriter(self._final + TEMP_SUFFIX, compression)
        try:
            self._index = IndexWriter(self._index_final + TEMP_SUFFIX)
        except BaseException:
            self.abort()
            raise
        self.info: ShardInfo | None = None

    @property
    def frames(self) -> int:
        return self._records.records

    @property
    def raw_bytes(self) -> int:
        return self._records.raw_bytes

    def write(self, record: bytes, row: list[Any]) -> None:
        """Append a serialized example and its :func:`~kartdata.index.index_row`."""
        with self._named_faults():
            self._index.write(row)
            self._records.write(record)

    def close(self) -> ShardInfo:
        if self.info is not None:
            return self.info
        try:
            with self._named_faults():
                sha = self._records.close()
                self._index.close()
            fs.rename(self._final + TEMP_SUFFIX, self._final)
            fs.rename(self._index_final + TEMP_SUFFIX, self._index_final)
        except BaseException:
            # the caller has already let go of a shard it closes
            self.abort()
            raise
        self.info = ShardInfo(
            path=self.rel,
            stratum=self.stratum,
            frames=self._records.records,
            bytes=self._records.bytes,
            sha256=sha,
            index=self.index_rel,
            generation=self.generation,
        )
        return self.info

    @contextlib.contextmanager
    def _named_faults(self) -> Iterator[None]:
        """A write to an open file fails without a file name (a full disk):
        give it this shard's, so the one-line error can say where."""
        try:
            yield
        except OSError as e:
            if e.filename:
                raise
            raise OSError(e.errno, e.strerror or str(e), self._final + TEMP_SUFFIX) from None

    def abort(self) -> None:
        self._records.abort()
        if hasattr(self, "_index"):
            with contextlib.suppress(Exception):
                self._index.abort()
        for p in (self._final + TEMP_SUFFIX, self._index_final + TEMP_SUFFIX):
            # best effort: what is left, the next run's clean-up deletes
            # (tf.io.gfile raises its own errors, not OSError)
            with contextlib.suppress(Exception):
                fs.remove(p)

    def __enter__(self) -> ShardFile:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


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
        #: Shards completed so far (closed, synced and renamed).
        self.finished: list[ShardInfo] = []
        self.records = 0

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

    def __enter__(self) -> StratumWriters:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
