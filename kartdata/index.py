"""The index sidecar: one small table beside each shard, one row per record.

Pandas views (:mod:`kartdata.views`) and the loader's start-up
(:mod:`kartdata.loader`) read these instead of the shards, so they never touch
an image byte. This module is everything about the format: its columns and
their types, its file name, its writer, its reader and its check.

A sidecar is a Parquet file, ``<shard>.index.parquet``: the strings (session,
track, stratum, tags, verdict) dictionary-encoded, row groups of
:data:`ROW_GROUP_ROWS` with min/max statistics, so a reader takes only the
columns it names and skips the row groups a filter rules out. Every sidecar of
a dataset has the same schema, so DuckDB or Polars can open them all at once::

    duckdb.sql("SELECT track, count(*) FROM 'ds/shards/*.index.parquet' GROUP BY track")
    polars.scan_parquet("ds/shards/*.index.parquet")

Datasets written before (manifest version 1) have gzip CSV sidecars,
``<shard>.index.csv.gz``, with the same columns; they are still read (every
column is parsed, so they are slower), and new shards added to such a dataset
get Parquet sidecars.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Sequence
from typing import Any

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
#: Columns stored dictionary-encoded (few distinct values, read as categoricals).
DICTIONARY_COLUMNS: tuple[str, ...] = ("session", "track", "stratum", "tags", "verdict")
#: The numeric columns' types (numpy names; Arrow's are the same widths).
NUMERIC_TYPES: dict[str, str] = {
    "frame": "int32",
    "t_ns": "int64",
    "x": "float32",
    "y": "float32",
    **dict.fromkeys(BUTTONS, "int8"),
    "record": "int32",
}
INDEX_SUFFIX = ".index.parquet"
#: Sidecars of datasets written before the Parquet index (still read).
CSV_INDEX_SUFFIX = ".index.csv.gz"
#: Rows per Parquet row group: the unit a filter skips. A 128 MiB shard of
#: 9 KB frames holds ~14,000 rows, one row group; smaller groups cost more per
#: row to read (zstd and per-group overhead: 2.5x at 4,096 rows, measured).
ROW_GROUP_ROWS = 16384
#: Rows a writer holds as Python values before packing them into Arrow.
_BATCH_ROWS = 1024


#: How sidecars are written: zstd; dictionary encoding for the string columns
#: only (on the numeric ones it made reading 2-3x slower for no size gain).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": list(DICTIONARY_COLUMNS),
    "write_statistics": True,
}


def index_path_for(shard_path: str) -> str:
    """The index sidecar of a shard (relative paths in, relative path out)."""
    return shard_path + INDEX_SUFFIX


def is_index_file(name: str) -> bool:
    return name.endswith(INDEX_SUFFIX) or name.endswith(CSV_INDEX_SUFFIX)


def arrow_schema() -> Any:
    """The Arrow schema of a sidecar, columns in ``INDEX_COLUMNS`` order."""
    import pyarrow as pa

    def type_of(name: str) -> Any:
        if name in DICTIONARY_COLUMNS:
            return pa.dictionary(pa.int32(), pa.string())
        return pa.from_numpy_dtype(NUMERIC_TYPES[name])

    return pa.schema([pa.field(c, type_of(c), nullable=False) for c in INDEX_COLUMNS])


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
    """Writes one Parquet sidecar at ``path`` a row group at a time (the
    caller picks a temporary name and renames it once the shard is complete);
    :meth:`close` writes it out and syncs it.

    The file is built in memory (a sidecar is ~100 KB per 128 MiB shard) and
    written in one go, so that any :mod:`kartdata.fs` path works, ``gs://`` and
    ``ram://`` included (pyarrow cannot write through a ``tf.io.gfile`` file)."""

    def __init__(self, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.rows = 0
        self._schema = arrow_schema()
        self._pending: list[list[Any]] = []
        self._batches: list[Any] = []
        self._batched = 0
        self._buffer = pa.BufferOutputStream()
        self._writer = pq.ParquetWriter(self._buffer, self._schema, **PARQUET_OPTIONS)
        # the file exists from the start, as the shard beside it does
        with fs.open_file(path, "wb"):
            pass
        self._closed = False

    def write(self, row: Sequence[Any]) -> None:
        """Append an :func:`index_row`; its ``record`` is the number of rows before it."""
        self._pending.append([*row, self.rows])
        self.rows += 1
        if len(self._pending) >= _BATCH_ROWS:
            self._pack()
            if self._batched >= ROW_GROUP_ROWS:
                self._flush()

    def _pack(self) -> None:
        if self._pending:
            columns = list(zip(*self._pending, strict=True))
            self._pending = []
            self._batches.append(table_from_columns(columns, self._schema))
            self._batched += len(self._batches[-1])

    def _flush(self) -> None:
        """Write what is held as one row group."""
        import pyarrow as pa

        self._pack()
        if self._batches:
            table = pa.concat_tables(self._batches).unify_dictionaries().combine_chunks()
            self._batches, self._batched = [], 0
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self._closed:
            return
        self._flush()
        self._writer.close()
        with fs.open_file(self.path, "wb") as f:
            f.write(self._buffer.getvalue().to_pybytes())
            f.flush()
            if not fs.is_remote(self.path):
                os.fsync(f.fileno())
        self._closed = True

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            # or pyarrow finishes the file when the writer is collected: at
            # exit, into a buffer nobody reads
            self._writer.is_open = False


def table_from_columns(columns: Sequence[Sequence[Any]], schema: Any | None = None) -> Any:
    """An Arrow table of the sidecar schema from one sequence per column.

    Built from buffers, not with ``pa.array``: that call's first use imports
    pandas (pyarrow checks every input for pandas objects), 0.35 s and ~40 MB
    in each shard worker, which has no other use for pandas."""
    import numpy as np
    import pyarrow as pa

    schema = schema or arrow_schema()
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if pa.types.is_dictionary(field.type):
            codes: dict[str, int] = {}
            indices = np.fromiter(
                (codes.setdefault(v, len(codes)) for v in values), np.int32, len(values)
            )
            arrays.append(
                pa.DictionaryArray.from_arrays(_int_array(indices), _string_array(list(codes)))
            )
        else:
            dtype = NUMERIC_TYPES[field.name]
            arrays.append(_int_array(np.asarray(values, dtype=dtype)))
    return pa.Table.from_arrays(arrays, schema=schema)


def _int_array(values: Any) -> Any:
    """A numpy array (any fixed-width type) as an Arrow array, no copy."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)]
    )


def _string_array(values: list[str]) -> Any:
    import numpy as np
    import pyarrow as pa

    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


def write_index_table(path: str, table: Any) -> None:
    """Write a whole sidecar at once (``table`` in :func:`arrow_schema`), synced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()  # as IndexWriter: any kartdata.fs path
    pq.write_table(
        table.cast(arrow_schema()), buffer, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS
    )
    with fs.open_file(path, "wb") as f:
        f.write(buffer.getvalue().to_pybytes())
        f.flush()
        if not fs.is_remote(path):
            os.fsync(f.fileno())


def _unusable(path: str, e: BaseException) -> DatasetError:
    if isinstance(e, FileNotFoundError):
        return DatasetError(f"{path}: index sidecar is missing")
    first = (str(e).splitlines() or [type(e).__name__])[0]
    return DatasetError(f"{path}: index sidecar is unreadable ({first})")


def read_index_table(path: str, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
    """One sidecar as an Arrow table of ``columns`` (default: all), rows that
    pass ``filters`` only (pyarrow's: an ``Expression`` or a list of
    ``(column, op, value)`` tuples). From Parquet, only those columns and the
    row groups whose statistics may pass are read. :class:`DatasetError`
    naming the file if it is missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = list(columns) if columns is not None else list(INDEX_COLUMNS)
    unknown = set(wanted) - set(INDEX_COLUMNS)
    if unknown:
        raise DatasetError(f"unknown index column(s) {sorted(unknown)}; they are {INDEX_COLUMNS}")
    expr = as_expression(filters)
    if path.endswith(CSV_INDEX_SUFFIX):
        table = _read_csv_index(path)
        if expr is not None:
            table = table.filter(expr)
        return table.select(wanted)
    try:
        with fs.open_file(path, "rb") as f:
            # pyarrow cannot read through a tf.io.gfile file: a remote sidecar
            # is fetched whole (it is small), a local one memory-mapped
            source = pa.BufferReader(f.read()) if fs.is_remote(path) else pa.memory_map(path)
            if expr is None:  # ParquetFile: a fraction of read_table's cost per file
                return pq.ParquetFile(source).read(columns=wanted, use_threads=False)
            return pq.read_table(source, columns=wanted, filters=expr, use_threads=False)
    except (OSError, pa.ArrowException) as e:
        raise _unusable(path, e) from None


def as_expression(filters: Any) -> Any:
    """``filters`` as a pyarrow compute Expression (None stays None)."""
    if filters is None:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if isinstance(filters, pc.Expression):
        return filters
    try:
        return pq.filters_to_expression(filters)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"filters {filters!r} are not pyarrow filters ({e})") from None


def _read_csv_index(path: str) -> Any:
    """A gzip CSV sidecar (manifest version 1) as an Arrow table of the schema."""
    import pandas as pd
    import pyarrow as pa

    dtypes: dict[str, Any] = {c: str for c in DICTIONARY_COLUMNS} | NUMERIC_TYPES
    try:
        with fs.open_file(path, "rb") as f:
            data = gzip.decompress(f.read())
        df = pd.read_csv(io.BytesIO(data), dtype=dtypes, keep_default_na=False)
        if tuple(df.columns) != INDEX_COLUMNS:
            raise ValueError(f"header is not {','.join(INDEX_COLUMNS)}")
    except FileNotFoundError as e:
        raise _unusable(path, e) from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise _unusable(path, e) from None
    except (ValueError, pd.errors.ParserError) as e:
        raise DatasetError(
            f"{path}: index sidecar is malformed ({str(e).splitlines()[0]})"
        ) from None
    if not len(df):
        return empty_index()
    plain = pa.Table.from_pandas(df, preserve_index=False).cast(_plain_schema())
    return plain.cast(arrow_schema())


def _plain_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
            for f in arrow_schema()
        ]
    )


def read_index(path: str, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
    """One sidecar as a pandas DataFrame (strings as categoricals); see
    :func:`read_index_table`."""
    return read_index_table(path, columns, filters).to_pandas()


def empty_index(columns: Sequence[str] | None = None) -> Any:
    """An Arrow table with the index's columns and types and no rows."""
    table = arrow_schema().empty_table()
    return table.select(list(columns)) if columns is not None else table


def session_counts(path: str) -> dict[str, int]:
    """Rows per session in one sidecar."""
    import pyarrow.compute as pc

    column = read_index_table(path, ["session"]).column("session").cast("string")
    return {c["values"]: c["counts"] for c in pc.value_counts(column).to_pylist()}


def check_index(path: str, name: str, records: int) -> str | None:
    """The problem with the existing sidecar at ``path`` (called ``name`` in
    the message) that should hold ``records`` rows, or None. Reads only a
    Parquet sidecar's footer."""
    if path.endswith(CSV_INDEX_SUFFIX):
        return _check_csv_index(path, name, records)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fs.is_remote(path):
            with fs.open_file(path, "rb") as f:
                meta = pq.read_metadata(pa.BufferReader(f.read()))
        else:
            meta = pq.read_metadata(path)
        names = tuple(meta.schema.to_arrow_schema().names)
    except (OSError, pa.ArrowException) as e:
        return f"{name}: unreadable index ({(str(e).splitlines() or [''])[0]})"
    if names != INDEX_COLUMNS:
        return f"{name}: columns are not {','.join(INDEX_COLUMNS)}"
    if meta.num_rows != records:
        return f"{name}: {meta.num_rows} rows, manifest says {records} records"
    return None


def _check_csv_index(path: str, name: str, records: int) -> str | None:
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
