"""Pandas views of a dataset, for notebooks (plots of them: :mod:`kartdata.plots`).

:func:`frames` and :func:`sessions` read only the manifest and the per-shard
index sidecars — never an image byte — so they are quick on a dataset of any
size. :func:`frame_image` reads one record from the one shard that holds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.index import empty_index, read_index
from kartdata.manifest import Manifest
from kartdata.schema import PAD_FIELDS, RECOVERY_TAG, STEERING_CLASSES, parse_stratum
from kartdata.split import SplitConfig, assign, recording_aliases


def _manifest(dataset: str | Manifest) -> Manifest:
    return dataset if isinstance(dataset, Manifest) else Manifest.load(str(dataset))


def frames(
    dataset: str,
    splits: SplitConfig = SplitConfig(),
    *,
    excluded: bool = True,
    verdict_store: str | None = None,
) -> Any:
    """One row per frame written to the dataset: session, track, frame, time,
    the pad, stratum, steering class, recovery flag, tags, the validator's
    verdict (empty = clean), the split, and where its record lies.

    With ``excluded``, frames the validator left out of the shards are added
    too (``excluded`` True, no pad or record), as far as the verdict store
    still holds their sessions' verdicts."""
    import pandas as pd

    manifest = _manifest(dataset)
    parts = []
    for shard in manifest.shards:
        df = read_index(fs.join(str(dataset), shard.index))
        df["shard"] = shard.path
        parts.append(df)
    if not parts:
        parts.append(empty_index().assign(shard=pd.Series(dtype=str)))
    df = pd.concat(parts, ignore_index=True)
    df["excluded"] = False
    if excluded:
        left_out = _excluded_rows(manifest, df, verdict_store)
        if len(left_out):
            df = pd.concat([df, left_out], ignore_index=True)
    start = {s.key: s for s in manifest.sessions}
    t_ns = df["t_ns"].where(df["t_ns"] >= 0)
    df["time_s"] = (t_ns - t_ns.groupby(df["session"]).transform("min")) / 1e9
    df["steering"] = [parse_stratum(s)[0] if s else None for s in df["stratum"]]
    df["recovery"] = df["stratum"].str.endswith(RECOVERY_TAG)
    split_of = assign(start, splits, recording_aliases(manifest.sessions))
    df["split"] = df["session"].map(split_of).fillna("unknown")
    df["steering"] = pd.Categorical(df["steering"], categories=list(STEERING_CLASSES))
    order = ["session", "track", "frame", "t_ns", "time_s", *PAD_FIELDS, "stratum", "steering"]
    order += ["recovery", "tags", "verdict", "excluded", "split", "shard", "record"]
    return df[order].sort_values(["session", "frame"], kind="stable").reset_index(drop=True)


def _excluded_rows(manifest: Manifest, written: Any, store: str | None) -> Any:
    """Rows for frames the verdict store lists and the shards do not hold."""
    import pandas as pd

    try:
        from kartdata.validate import verdicts
    except ImportError:  # a kartkit without the validator
        return pd.DataFrame()
    have = set(zip(written["session"], written["frame"], strict=True))
    rows = []
    for s in manifest.sessions:
        if not s.excluded:
            continue
        stored = verdicts.load(s.key, store)
        if stored is None:
            continue
        for frame, reason in stored["verdicts"].items():
            if (s.key, int(frame)) not in have:
                rows.append(
                    {"session": s.key, "track": s.track, "frame": int(frame), "verdict": reason}
                )
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    out["excluded"] = True
    out["stratum"] = ""
    out["tags"] = ""
    out["shard"] = ""
    out["t_ns"] = -1
    out["record"] = -1
    return out


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
        df = read_index(fs.join(str(dataset), shard.index), columns=("session", "frame", "record"))
        hit = df[(df["session"] == session) & (df["frame"] == frame)]
        if len(hit):
            return _read_record_image(
                fs.join(str(dataset), shard.path),
                int(hit["record"].iloc[0]),
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
