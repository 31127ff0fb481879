"""Small real datasets for the kartmodel tests.

Uses ``kartdata.shard`` when it is there; until then it writes the same
contract (schema records, TFRecord shards per stratum, index sidecars, the
manifest) directly, from ``kartdata.synth`` frames.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from kartdata import synth
from kartdata.manifest import Encoding, Manifest, SessionInfo, ShardInfo
from kartdata.schema import (
    CONTEXT_RADIUS,
    INDEX_COLUMNS,
    PAD_FIELDS,
    ClassThresholds,
    Record,
    encode_record,
    stratum_name,
)
from kartdata.tfrecord import TFRecordWriter


def make_dataset(
    root: Path, sessions: int = 4, frames: int = 120, width: int = 160, height: int = 120
) -> Path:
    """``sessions`` synthetic drives (the road bends with the steering) as a
    dataset; session keys are ``s0``, ``s1``… so splits can name them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    classes = ClassThresholds()
    by_stratum: dict[str, list[tuple[Record, dict[str, object]]]] = {}
    infos = []
    for s in range(sessions):
        key = f"s{s}"
        d = synth.drive(frames, seed=s, recovery_share=0.2 if s % 2 else 0.0)
        pads = [synth._pad(d, i).to_vector() for i in range(frames)]
        strata: dict[str, int] = {}
        for i in range(frames):
            img = synth.render(d.steer[i], i, width, height, s)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=90)
            ctx = [
                v
                for j in range(i - CONTEXT_RADIUS, i + CONTEXT_RADIUS + 1)
                for v in pads[min(max(j, 0), frames - 1)]
            ]
            tags = ("recovery",) if d.recovery[i] else ()
            stratum = stratum_name(classes.classify(pads[i][0]), bool(tags))
            strata[stratum] = strata.get(stratum, 0) + 1
            rec = Record(
                buf.getvalue(),
                height,
                width,
                key,
                "synthetic",
                i,
                i * 66_000_000,
                tuple(pads[i]),
                tuple(ctx),
                stratum,
                tags,
            )
            row = {"session": key, "track": "synthetic", "frame": i, "t_ns": rec.t_ns}
            row.update(dict(zip(PAD_FIELDS, pads[i], strict=True)))
            row.update(stratum=stratum, tags=";".join(tags), verdict="")
            by_stratum.setdefault(stratum, []).append((rec, row))
        infos.append(
            SessionInfo(
                key,
                "native",
                str(root / key),
                "synthetic",
                "synthetic",
                "synth",
                width,
                height,
                15.0,
                (),
                frames,
                frames,
                {},
                strata,
                1,
            )
        )
    shards = []
    for stratum, items in sorted(by_stratum.items()):
        name = f"shards/{stratum}-g1-w0-0000.tfrecord.gz"
        w = TFRecordWriter(str(root / name), "GZIP")
        text = io.StringIO()
        cw = csv.DictWriter(text, fieldnames=list(INDEX_COLUMNS))
        cw.writeheader()
        for n, (rec, row) in enumerate(items):
            w.write(encode_record(rec))
            cw.writerow({**row, "record": n})
        sha = w.close()
        index = name.replace(".tfrecord.gz", ".index.csv.gz")
        (root / index).write_bytes(gzip.compress(text.getvalue().encode()))
        shards.append(ShardInfo(name, stratum, len(items), w.bytes, sha, index, 1))
    Manifest(Encoding(), classes, CONTEXT_RADIUS, shards, infos, generation=1).save(str(root))
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame(steer: float, width: int = 160, height: int = 120, t: int = 0) -> np.ndarray:
    return synth.render(steer, t, width, height, 0)
