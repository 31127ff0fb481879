"""The index sidecar: one small table beside each shard, one row per record.

Pandas views (:mod:`kartdata.views`) and the loader's start-up
(:mod:`kartdata.loader`) read these instead of the shards, so they never touch
an image byte. This module is everything about the format: its columns and
their types, its file name, its writer, its reader and its check.

Today a sidecar is a gzip CSV (``<shard>.index.csv.gz``) with a header row.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Sequence
from typing import IO, Any

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.schema import BUTTONS, PAD_FIELDS, TAG_SEPARATOR

#: One row per record in the shard, in record order. ``verdict`` is the
#: validator's reason for a flagged frame kept with ``--keep-flagged`` (empty
#: for clean frames); ``record`` is the record's position in its shard.
INDEX_COLUMNS: tuple[str, ...] = (
    "session",
    "track",
    "frame",
    "t_ns",
    *PAD_FIELDS,
    "stratum",
    "tags",
    "verdict",
    "record",
)
#: The pandas dtype each column is read as.
INDEX_DTYPES: dict[str, Any] = {
    "session": str,
    "track": str,
    "frame": "int64",
    "t_ns": "int64",
    "stratum": str,
    "tags": str,
    "verdict": str,
    "record": "int64",
    "x": "float32",
    "y": "float32",
    **dict.fromkeys(BUTTONS, "int8"),
}
INDEX_SUFFIX = ".index.csv.gz"


def index_path_for(shard_path: str) -> str:
    """The index sidecar of a shard (relative paths in, relative path out)."""
    return shard_path + INDEX_SUFFIX


def is_index_file(name: str) -> bool:
    return name.endswith(INDEX_SUFFIX)


def index_row(
    session: str,
    track: str,
    frame: int,
    t_ns: int,
    pad: Sequence[float],
    stratum: str,
    tags: Sequence[str],
    verdict: str,
) -> list[Any]:
    """A row in ``INDEX_COLUMNS`` order (buttons as 0/1), without ``record``:
    :class:`IndexWriter` adds the row's position."""
    values = [v if name in ("x", "y") else int(v) for name, v in zip(PAD_FIELDS, pad, strict=True)]
    return [session, track, frame, t_ns, *values, stratum, TAG_SEPARATOR.join(tags), verdict]


class IndexWriter:
    """Writes one sidecar at ``path`` (the caller picks a temporary name and
    renames it once the shard is complete); :meth:`close` syncs it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._cm = fs.open_file(path, "wb")
        self._raw: IO[bytes] = self._cm.__enter__()
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._text = io.TextIOWrapper(self._gz, encoding="utf-8", newline="")
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._csv.writerow(INDEX_COLUMNS)
        self._closed = False

    def write(self, row: Sequence[Any]) -> None:
        """Append an :func:`index_row`; its ``record`` is the number of rows before it."""
        self._csv.writerow([*row, self.rows])
        self.rows += 1

    def close(self) -> None:
        if self._closed:
            return
        self._text.flush()
        self._text.detach()
        self._gz.close()
        self._raw.flush()
        if not fs.is_remote(self.path):
            os.fsync(self._raw.fileno())
        self._cm.__exit__(None, None, None)
        self._closed = True

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._cm.__exit__(None, None, None)


def read_index(path: str, columns: Sequence[str] | None = None) -> Any:
    """One sidecar as a DataFrame (``columns``: a subset of ``INDEX_COLUMNS``);
    :class:`DatasetError` naming the file if it is missing or unreadable."""
    import pandas as pd

    wanted = list(columns) if columns is not None else list(INDEX_COLUMNS)
    try:
        with fs.open_file(path, "rb") as f:
            data = gzip.decompress(f.read())
        return pd.read_csv(
            io.BytesIO(data),
            usecols=wanted,
            dtype={k: v for k, v in INDEX_DTYPES.items() if k in wanted},
            keep_default_na=False,
        )
    except FileNotFoundError:
        raise DatasetError(f"{path}: index sidecar is missing") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetError(f"{path}: index sidecar is unreadable ({e})") from None
    except (ValueError, pd.errors.ParserError) as e:
        raise DatasetError(
            f"{path}: index sidecar is malformed ({str(e).splitlines()[0]})"
        ) from None


def empty_index(columns: Sequence[str] | None = None) -> Any:
    """A DataFrame with the index's columns and dtypes and no rows."""
    import pandas as pd

    wanted = list(columns) if columns is not None else list(INDEX_COLUMNS)
    return pd.DataFrame({c: pd.Series(dtype=INDEX_DTYPES[c]) for c in wanted})


def check_index(path: str, name: str, records: int) -> str | None:
    """The problem with the existing sidecar at ``path`` (called ``name`` in
    the message) that should hold ``records`` rows, or None."""
    try:
        with fs.open_file(path, "rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split(",")
            rows = sum(1 for line in f if line.strip())
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:
        return f"{name}: unreadable index ({e})"
    if tuple(header) != INDEX_COLUMNS:
        return f"{name}: header is not {','.join(INDEX_COLUMNS)}"
    if rows != records:
        return f"{name}: {rows} rows, manifest says {records} records"
    return None
