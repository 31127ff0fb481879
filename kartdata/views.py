"""Pandas views of a dataset, for notebooks (plots of them: :mod:`kartdata.plots`).

:func:`frames` and :func:`sessions` read only the manifest and the per-shard
index sidecars — never an image byte — so they are quick on a dataset of any
size. :func:`frame_image` reads one record from the one shard that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.index import (
    DICTIONARY_COLUMNS,
    INDEX_COLUMNS,
    arrow_schema,
    as_expression,
    empty_index,
    read_index_table,
)
from kartdata.manifest import Manifest, ShardInfo
from kartdata.schema import PAD_FIELDS, RECOVERY_TAG, STEERING_CLASSES, parse_stratum
from kartdata.split import SplitConfig, assign, recording_aliases


def _manifest(dataset: str | Manifest) -> Manifest:
    return dataset if isinstance(dataset, Manifest) else Manifest.load(str(dataset))


#: The columns of :func:`frames`, in order: the index's, and these derived ones.
FRAME_COLUMNS: tuple[str, ...] = (
    "session",
    "track",
    "frame",
    "t_ns",
    "time_s",
    *PAD_FIELDS,
    "stratum",
    "steering",
    "recovery",
    "tags",
    "verdict",
    "excluded",
    "split",
    "shard",
    "record",
)
#: Index columns each derived column is computed from.
_DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "time_s": ("t_ns",),
    "steering": ("stratum",),
    "recovery": ("stratum",),
    "split": (),
    "excluded": (),
    "shard": (),
}
#: Rows come sorted by these (and they are read for it whatever ``columns`` says).
_SORT_KEYS = ("session", "frame")


def frames(
    dataset: str,
    splits: SplitConfig = SplitConfig(),
    *,
    columns: Sequence[str] | None = None,
    filters: Any = None,
    excluded: bool = True,
    verdict_store: str | None = None,
) -> Any:
    """One row per frame written to the dataset, sorted by session and frame:
    session, track, frame, time, the pad, stratum, steering class, recovery
    flag, tags, the validator's verdict (empty = clean), the split, and where
    its record lies (``shard``, ``record``). Strings are categoricals.

    ``columns`` (names of :data:`FRAME_COLUMNS`) keeps only those, and reads
    only what they need from the index sidecars; ``filters`` (pyarrow's: an
    ``Expression``, or ``[("track", "==", "mmr"), ("x", "<", -0.5)]``, a list
    of lists for OR) on index columns keeps only the rows that pass, and skips
    the row groups whose statistics rule them out.

    With ``excluded``, frames the validator left out of the shards are added
    too (``excluded`` True, no pad or record), as far as the verdict store
    still holds their sessions' verdicts."""
    import pandas as pd
    import pyarrow as pa

    wanted = list(columns) if columns is not None else list(FRAME_COLUMNS)
    unknown = [c for c in wanted if c not in FRAME_COLUMNS]
    if unknown:
        raise DatasetError(f"unknown frames() column(s) {unknown}; they are {FRAME_COLUMNS}")
    read = {c for c in wanted if c in INDEX_COLUMNS} | set(_SORT_KEYS)
    for c in wanted:
        read.update(_DERIVED_FROM.get(c, ()))
    read_cols = [c for c in INDEX_COLUMNS if c in read]
    manifest = _manifest(dataset)
    tables = _read_tables(str(dataset), manifest, read_cols, filters, with_shard="shard" in wanted)
    flags = None
    if excluded:
        left_out = _excluded_table(manifest, tables, filters, verdict_store)
        if left_out is not None:
            flags = np.r_[np.zeros(sum(len(t) for t in tables), bool), np.ones(len(left_out), bool)]
            tables.append(left_out)
    chunks = _arrays(tables)
    del tables
    out: dict[str, Any] = {}
    session = _categorical(chunks.pop("session"), sort=True)
    frame = _numpy(chunks.pop("frame"))
    order = _sort_order(session.codes, frame)
    session = pd.Categorical.from_codes(session.codes[order], session.categories)
    frame = frame[order]
    out["session"], out["frame"] = session, frame
    starts = np.flatnonzero(np.r_[True, session.codes[1:] != session.codes[:-1]])
    pool = pa.default_memory_pool()
    for name in [c for c in FRAME_COLUMNS if c in chunks]:
        arr = chunks.pop(name)
        if name in DICTIONARY_COLUMNS or name == "shard":
            cat = _categorical(arr)
            out[name] = pd.Categorical.from_codes(cat.codes[order], cat.categories)
        else:
            out[name] = _numpy(arr)[order]
        # each column's Arrow memory back to the system as soon as it is
        # converted: at 10 M rows this is what keeps the peak near the table's size
        del arr
        pool.release_unused()
    n = len(frame)
    if "time_s" in wanted:
        t = out["t_ns"].astype(np.float64)
        t[t < 0] = np.nan
        first = np.fmin.reduceat(t, starts) if n else t
        out["time_s"] = (t - np.repeat(first, np.diff(np.r_[starts, n]))) / 1e9
    if "steering" in wanted or "recovery" in wanted:
        stratum = out["stratum"]
        steer = [parse_stratum(s)[0] if s else None for s in stratum.categories]
        lut = np.array([STEERING_CLASSES.index(c) if c else -1 for c in steer] + [-1], np.int8)
        out["steering"] = pd.Categorical.from_codes(lut[stratum.codes], list(STEERING_CLASSES))
        is_rec = np.array([str(c).endswith(RECOVERY_TAG) for c in stratum.categories] + [False])
        out["recovery"] = is_rec[stratum.codes]
    if "split" in wanted:
        split_of = assign(manifest.session_keys(), splits, recording_aliases(manifest.sessions))
        names = sorted({*split_of.values(), "unknown"})
        lut = np.array([names.index(split_of.get(k, "unknown")) for k in session.categories])
        out["split"] = pd.Categorical.from_codes(lut[session.codes], names)
    if "excluded" in wanted:
        out["excluded"] = np.zeros(n, bool) if flags is None else flags[order]
    return pd.DataFrame({c: out[c] for c in wanted}, copy=False)


def _read_tables(
    dataset: str, manifest: Manifest, columns: list[str], filters: Any, *, with_shard: bool
) -> list[Any]:
    """Each shard's index (``columns``, rows passing ``filters``), read on a
    few threads (pyarrow releases the GIL); ``shard`` added if asked."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    def one(shard: ShardInfo) -> Any:
        table = read_index_table(fs.join(dataset, shard.index), columns, filters)
        if with_shard:
            indices = pa.array(np.zeros(len(table), np.int32))
            table = table.append_column(
                "shard", pa.DictionaryArray.from_arrays(indices, pa.array([shard.path]))
            )
        return table

    with ThreadPoolExecutor(max_workers=4) as pool:
        tables = list(pool.map(one, manifest.shards))
    if not tables:
        empty = empty_index(columns)
        if with_shard:
            dictionary = pa.dictionary(pa.int32(), pa.string())
            empty = empty.append_column("shard", pa.array([], dictionary))
        tables.append(empty)
    return tables


def _arrays(tables: list[Any]) -> dict[str, list[Any]]:
    """Column → its Arrow arrays across ``tables`` (at least one, maybe empty).
    Arrays, not ChunkedArrays: ``pa.chunked_array`` would walk those value by value."""
    import pyarrow as pa

    schema = tables[0].schema
    return {
        c: [a for t in tables for a in t.column(c).chunks] or [pa.array([], schema.field(c).type)]
        for c in schema.names
    }


def _categorical(chunks: list[Any], *, sort: bool = False) -> Any:
    """Dictionary (or string) chunks as one pandas Categorical; with ``sort``,
    its categories in lexical order (so codes sort as the strings do)."""
    import pyarrow as pa

    arr = pa.chunked_array(chunks)
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    cat = arr.to_pandas().array  # a Categorical; pyarrow unifies the chunks' dictionaries
    if sort and not cat.categories.is_monotonic_increasing:
        cat = cat.reorder_categories(sorted(cat.categories))
    return cat


def _numpy(chunks: list[Any]) -> np.ndarray:
    import pyarrow as pa

    return pa.chunked_array(chunks).to_numpy()


def _sort_order(session_codes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The permutation that sorts rows by (session, frame), stable."""
    if not len(frame):
        return np.zeros(0, np.int64)
    offset = frame.min()
    if frame.max() - offset < (1 << 31):
        key = session_codes.astype(np.int64) << 32
        key |= frame - offset
        return np.argsort(key, kind="stable")
    return np.lexsort((frame, session_codes))


def _excluded_table(manifest: Manifest, tables: list[Any], filters: Any, store: str | None) -> Any:
    """Rows for frames the verdict store lists and the shards do not hold, as
    an Arrow table like ``tables`` (None if there are none)."""
    import pyarrow as pa

    try:
        from kartdata.validate import verdicts
    except ImportError:  # a kartkit without the validator
        return None
    import pyarrow.compute as pc

    stored = {s.key: (s, verdicts.load(s.key, store)) for s in manifest.sessions if s.excluded}
    stored = {k: v for k, v in stored.items() if v[1] is not None}
    if not stored:
        return None
    # frames of those sessions the shards hold anyway (kept with --keep-flagged)
    keys = pa.array(sorted(stored))
    have: set[tuple[str, int]] = set()
    for t in tables:
        mine = t.filter(pc.is_in(t.column("session"), value_set=keys))
        sessions, frames_ = mine.column("session").to_pylist(), mine.column("frame").to_pylist()
        have.update(zip(sessions, frames_, strict=True))
    rows = []
    for key, (s, verdict_file) in stored.items():
        for frame, reason in verdict_file["verdicts"].items():
            if (key, int(frame)) not in have:
                rows.append((key, s.track, int(frame), reason))
    if not rows:
        return None
    n = len(rows)
    dictionary = pa.dictionary(pa.int32(), pa.string())
    strings = {
        "session": [r[0] for r in rows],
        "track": [r[1] for r in rows],
        "verdict": [r[3] for r in rows],
        "stratum": [""] * n,
        "tags": [""] * n,
    }
    # every index column, so that filters on any of them apply; then the
    # columns the shards' tables hold
    full = arrow_schema()
    template = tables[0].schema
    arrays = {}
    for name in [*INDEX_COLUMNS, *(["shard"] if "shard" in template.names else [])]:
        if name in strings:
            arrays[name] = pa.array(strings[name]).dictionary_encode().cast(dictionary)
        elif name == "shard":
            arrays[name] = pa.array([""] * n).dictionary_encode().cast(dictionary)
        elif name == "frame":
            arrays[name] = pa.array([r[2] for r in rows], full.field(name).type)
        elif name in ("t_ns", "record"):
            arrays[name] = pa.array([-1] * n, full.field(name).type)
        else:  # the pad: none
            arrays[name] = pa.nulls(n, full.field(name).type)
    table = pa.table(arrays)
    expr = as_expression(filters)
    if expr is not None:
        table = table.filter(expr)
    return table.select(template.names)


def sessions(dataset: str, splits: SplitConfig = SplitConfig()) -> Any:
    """One row per session: where it came from, its size, what was written and
    left out (with reasons), its class mix, recovery share and split."""
    import pandas as pd

    manifest = _manifest(dataset)
    split_of = assign(manifest.session_keys(), splits, recording_aliases(manifest.sessions))
    rows = []
    for s in manifest.sessions:
        written = max(s.frames_written, 1)
        by_class = dict.fromkeys(STEERING_CLASSES, 0)
        recovery = 0
        for stratum, n in s.strata.items():
            cls, rec = parse_stratum(stratum)
            by_class[cls] += n
            recovery += n if rec else 0
        rows.append(
            {
                "session": s.key,
                "layout": s.layout,
                "source": s.source,
                "game": s.game,
                "track": s.track,
                "player": s.player,
                "size": f"{s.width}x{s.height}",
                "fps": s.fps,
                "frames_total": s.frames_total,
                "frames_written": s.frames_written,
                "excluded": sum(s.excluded.values()),
                "excluded_reasons": "; ".join(f"{k}: {v}" for k, v in sorted(s.excluded.items())),
                **{f"{c}_share": by_class[c] / written for c in STEERING_CLASSES},
                "recovery_share": recovery / written,
                "tags": ";".join(s.tags),
                "split": split_of.get(s.key, "unknown"),
                "generation": s.generation,
            }
        )
    return pd.DataFrame(rows)


def frame_image(dataset: str, session: str, frame: int) -> np.ndarray:
    """The stored image (uint8 RGB) of one frame, reading only its shard; for a
    frame left out of the shards, the original from the recording if it is
    still where it was sharded from."""
    manifest = _manifest(dataset)
    for shard in manifest.shards:
        where = [("session", "==", session), ("frame", "==", frame)]
        hit = read_index_table(fs.join(str(dataset), shard.index), ["record"], where)
        if len(hit):
            return _read_record_image(
                fs.join(str(dataset), shard.path),
                int(hit.column("record")[0].as_py()),
                manifest.encoding.compression,
            )
    # Frames the validator left out are not in the shards; the recording may still be there.
    info = next((s for s in manifest.sessions if s.key == session), None)
    if info is not None and fs.exists(info.source):
        from kartdata.sources import open_source

        for f in open_source(info.source).frames():
            if f.index == frame:
                return f.image()
    raise DatasetError(f"{dataset}: no frame {frame} of session {session!r} in the dataset")


def record_image(dataset: str, shard: str, record: int) -> np.ndarray:
    """The image of record number ``record`` of ``shard`` (a path relative to
    the dataset, as in the ``shard`` column of :func:`frames`)."""
    manifest = _manifest(dataset)
    return _read_record_image(fs.join(str(dataset), shard), record, manifest.encoding.compression)


def _read_record_image(path: str, record: int, compression: str) -> np.ndarray:
    import tensorflow as tf

    from kartdata.schema import decode_example

    ds = tf.data.TFRecordDataset(path, compression_type=compression).skip(record).take(1)
    try:
        data = next(iter(ds)).numpy()
    except StopIteration:
        raise DatasetError(f"{path}: record {record} is missing (shard is short)") from None
    except tf.errors.OpError as e:
        raise DatasetError(f"{path}: record {record} is unreadable ({e.message})") from None
    rec = decode_example(data)
    return tf.io.decode_image(rec.image, channels=3, expand_animations=False).numpy()
