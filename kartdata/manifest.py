"""The dataset manifest: what a dataset holds, in one versioned JSON file.

::

    DATASET/
      manifest.json                                  this file, replaced atomically
      shards/<stratum>-g<gen>-w<worker>-<seq>.tfrecord[.gz|.zz]
      shards/<same name>.index.parquet               the index sidecar (kartdata.index)

A shard or index file that ``manifest.json`` does not name is not part of the
dataset (a run that was killed before it finished); the next writer deletes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.index import check_index, is_index_file
from kartdata.schema import CONTEXT_RADIUS, SCHEMA_VERSION, STRATA, ClassThresholds

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "kartkit-dataset"
#: 2: index sidecars in Parquet (kartdata.index); version 1 datasets (gzip CSV
#: sidecars) still read, and are saved as version 2 when shards are added.
MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)

Compression = Literal["GZIP", "ZLIB", ""]
#: File suffix of each record compression, so names say what they hold.
COMPRESSION_SUFFIX: dict[str, str] = {
    "GZIP": ".tfrecord.gz",
    "ZLIB": ".tfrecord.zz",
    "": ".tfrecord",
}


@dataclass(frozen=True)
class Encoding:
    """How images and records are stored."""

    image: str = "jpeg"
    quality: int = 90
    #: Images are scaled (never up) to fit within this box, keeping aspect.
    #: 320x240 leaves room for both 200x66 and 160x90 model inputs.
    max_width: int = 320
    max_height: int = 240
    #: tf.io.TFRecordOptions compression_type: "GZIP", "ZLIB" or "" (none).
    compression: str = "GZIP"

    def stored_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) a ``width`` x ``height`` frame is stored at."""
        return fit_size(width, height, self.max_width, self.max_height)


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Largest size within the box with the same aspect; never larger than the input."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the dataset root
    stratum: str
    frames: int
    bytes: int
    sha256: str
    index: str  # relative path of the metadata index
    generation: int


@dataclass(frozen=True)
class SessionInfo:
    key: str  # Source.key: content fingerprint, how re-sharding is detected
    layout: str  # native | tensorkart | ctr
    source: str  # where it was read from (absolute path)
    game: str
    track: str
    player: str
    width: int
    height: int
    fps: float
    tags: tuple[str, ...]
    frames_total: int  # frames in the recording
    frames_written: int  # records in shards
    excluded: dict[str, int]  # reason -> frames left out (validator verdicts)
    strata: dict[str, int]  # stratum -> records
    generation: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    encoding: Encoding = field(default_factory=Encoding)
    classes: ClassThresholds = field(default_factory=ClassThresholds)
    context_radius: int = CONTEXT_RADIUS
    shards: list[ShardInfo] = field(default_factory=list)
    sessions: list[SessionInfo] = field(default_factory=list)
    #: Steering/button histograms over written records:
    #: {"x": {"edges": [...], "counts": [...]}, "y": {...}, "buttons": {name: count}}
    histogram: dict[str, Any] = field(default_factory=dict)
    generation: int = 0
    created: str = ""
    updated: str = ""
    schema_version: int = SCHEMA_VERSION
    version: int = MANIFEST_VERSION

    # -- derived views -----------------------------------------------------

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def strata(self) -> dict[str, int]:
        out = dict.fromkeys(STRATA, 0)
        for s in self.shards:
            out[s.stratum] += s.frames
        return out

    @property
    def excluded(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.sessions:
            for reason, n in s.excluded.items():
                out[reason] = out.get(reason, 0) + n
        return out

    def session_keys(self) -> set[str]:
        return {s.key for s in self.sessions}

    def shards_of(self, strata: Iterable[str]) -> list[ShardInfo]:
        wanted = set(strata)
        return [s for s in self.shards if s.stratum in wanted]

    # -- persistence -------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "schema_version": self.schema_version,
            "created": self.created,
            "updated": self.updated,
            "generation": self.generation,
            "encoding": asdict(self.encoding),
            "classes": self.classes.to_json(),
            "context_radius": self.context_radius,
            "frames": self.frames,
            "bytes": self.bytes,
            "strata": self.strata,
            "excluded": self.excluded,
            "histogram": self.histogram,
            "sessions": [asdict(s) for s in self.sessions],
            "shards": [asdict(s) for s in self.shards],
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = MANIFEST_FILE) -> Manifest:
        if not isinstance(obj, dict) or obj.get("format") != MANIFEST_FORMAT:
            raise DatasetError(f"{where}: not a kartkit dataset manifest")
        if obj.get("version") not in READABLE_VERSIONS:
            raise DatasetError(f"{where}: manifest version {obj.get('version')!r} is not supported")
        if obj.get("schema_version") != SCHEMA_VERSION:
            raise DatasetError(
                f"{where}: records use schema version {obj.get('schema_version')!r}; "
                f"this kartkit reads {SCHEMA_VERSION}"
            )
        try:
            return cls(
                encoding=Encoding(**obj["encoding"]),
                classes=ClassThresholds.from_json(obj["classes"]),
                context_radius=int(obj["context_radius"]),
                shards=[ShardInfo(**s) for s in obj["shards"]],
                sessions=[
                    SessionInfo(**{**s, "tags": tuple(s.get("tags", ()))}) for s in obj["sessions"]
                ],
                histogram=dict(obj.get("histogram", {})),
                generation=int(obj["generation"]),
                created=str(obj.get("created", "")),
                updated=str(obj.get("updated", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{where}: malformed manifest ({e})") from None

    @classmethod
    def load(cls, dataset: str) -> Manifest:
        path = fs.join(str(dataset), MANIFEST_FILE)
        if not fs.exists(path):
            raise DatasetError(f"{path}: no manifest; not a kartkit dataset (run `kartdata shard`)")
        try:
            with fs.open_file(path, "rb") as f:
                obj = json.loads(f.read())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{path}: manifest is not valid JSON ({e})") from None
        return cls.from_json(obj, where=path)

    def save(self, dataset: str) -> None:
        """Atomically replace the dataset's manifest (shards must be synced first)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.created = self.created or now
        self.updated = now
        data = (json.dumps(self.to_json(), indent=1) + "\n").encode()
        fs.atomic_write(fs.join(str(dataset), MANIFEST_FILE), data)


# ---------------------------------------------------------------------------
# Files of a dataset: naming, clean-up, verification, summary
# ---------------------------------------------------------------------------

SHARDS_DIR = "shards"
#: Suffix of files being written; never named by a manifest.
TEMP_SUFFIX = ".tmp"


def _is_dataset_file(name: str) -> bool:
    if name.endswith(TEMP_SUFFIX):
        return True
    return is_index_file(name) or any(name.endswith(s) for s in COMPRESSION_SUFFIX.values())


def cleanup(dataset: str, manifest: Manifest) -> list[str]:
    """Delete shard, index and temporary files that ``manifest`` does not name
    (what a killed or failed run left); returns their relative paths. Call it
    only while holding the dataset's lock."""
    dataset = str(dataset)
    referenced = {s.path for s in manifest.shards} | {s.index for s in manifest.shards}
    removed: list[str] = []
    shards_dir = fs.join(dataset, SHARDS_DIR)
    names = fs.listdir(shards_dir) if fs.exists(shards_dir) else []
    for name in names:
        rel = f"{SHARDS_DIR}/{name}"
        if rel not in referenced and _is_dataset_file(name):
            fs.remove(fs.join(shards_dir, name))
            removed.append(rel)
    tmp = fs.join(dataset, MANIFEST_FILE + TEMP_SUFFIX)
    if fs.exists(tmp):
        fs.remove(tmp)
        removed.append(MANIFEST_FILE + TEMP_SUFFIX)
    return removed


def orphans(dataset: str, manifest: Manifest) -> list[str]:
    """Shard, index or temporary files present but not named by the manifest."""
    referenced = {s.path for s in manifest.shards} | {s.index for s in manifest.shards}
    shards_dir = fs.join(str(dataset), SHARDS_DIR)
    names = fs.listdir(shards_dir) if fs.exists(shards_dir) else []
    return [
        f"{SHARDS_DIR}/{n}"
        for n in names
        if _is_dataset_file(n) and f"{SHARDS_DIR}/{n}" not in referenced
    ]


@dataclass
class VerifyReport:
    dataset: str
    shards: int = 0
    frames: int = 0
    bytes: int = 0
    #: One line per problem, each naming the shard (or manifest) it is about.
    problems: list[str] = field(default_factory=list)
    #: Files the manifest does not name (harmless; the next `shard` deletes them).
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Hashing:
    """A read-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha.update(data)
        self.bytes += len(data)
        return data


def _check_shard(
    path: str, s: ShardInfo, compression: str, report: VerifyReport, *, rehash: bool
) -> list[str]:
    from kartdata.tfrecord import TFRecordError, iter_records

    if not rehash:
        size = fs.size(path)
        report.frames += s.frames
        report.bytes += size
        return [f"{s.path}: {size} bytes, manifest says {s.bytes}"] if size != s.bytes else []
    try:
        with fs.open_file(path, "rb") as f:
            h = _Hashing(f)
            records = sum(1 for _ in iter_records(h, compression, where=s.path))
    except TFRecordError as e:
        return [str(e)]
    report.frames += records
    report.bytes += h.bytes
    problems = []
    if h.bytes != s.bytes:
        problems.append(f"{s.path}: {h.bytes} bytes, manifest says {s.bytes}")
    if h.sha.hexdigest() != s.sha256:
        problems.append(f"{s.path}: sha256 {h.sha.hexdigest()} != manifest's {s.sha256}")
    if records != s.frames:
        problems.append(f"{s.path}: {records} records, manifest says {s.frames}")
    return problems


def verify(dataset: str, *, progress: bool = False, rehash: bool = True) -> VerifyReport:
    """Re-check every shard against the manifest: it exists, its sha256 and size
    match, its records parse (checksums included) and number what the manifest
    says, and its index has one row per record. Reads each shard once.

    ``rehash=False`` reads no shard: it checks each shard's size on disk and
    its index (a Parquet sidecar's footer), so it costs per shard, not per byte."""
    dataset = str(dataset)
    m = Manifest.load(dataset)
    report = VerifyReport(dataset=dataset, orphans=orphans(dataset, m))
    shards: Iterable[ShardInfo] = m.shards
    if progress:
        from tqdm import tqdm

        shards = tqdm(m.shards, unit="shard", desc="verify")
    for s in shards:
        path = fs.join(dataset, s.path)
        report.shards += 1
        if not fs.exists(path):
            report.problems.append(f"{s.path}: missing")
            continue
        problems = _check_shard(path, s, m.encoding.compression, report, rehash=rehash)
        index = fs.join(dataset, s.index)
        if not fs.exists(index):
            problems.append(f"{s.index}: index of {s.path} is missing")
        else:
            problem = check_index(index, s.index, s.frames)
            if problem:
                problems.append(problem)
        report.problems.extend(problems)
    by_session = sum(x.frames_written for x in m.sessions)
    if by_session != m.frames:
        report.problems.append(
            f"{MANIFEST_FILE}: sessions account for {by_session} records, shards hold {m.frames}"
        )
    return report


def summary(dataset: str, manifest: Manifest | None = None) -> dict[str, Any]:
    """What ``kartdata info`` shows, as plain data (``--json``)."""
    m = manifest or Manifest.load(str(dataset))
    frames = m.frames
    return {
        "dataset": str(dataset),
        "generation": m.generation,
        "schema_version": m.schema_version,
        "created": m.created,
        "updated": m.updated,
        "encoding": asdict(m.encoding),
        "classes": m.classes.to_json(),
        "context_radius": m.context_radius,
        "frames": frames,
        "bytes": m.bytes,
        "bytes_per_frame": round(m.bytes / frames, 1) if frames else 0.0,
        "shards": len(m.shards),
        "strata": m.strata,
        "shards_per_stratum": {st: sum(1 for s in m.shards if s.stratum == st) for st in STRATA},
        "excluded": m.excluded,
        "sessions": [
            {
                "key": s.key,
                "layout": s.layout,
                "source": s.source,
                "track": s.track,
                "size": f"{s.width}x{s.height}",
                "frames_total": s.frames_total,
                "frames_written": s.frames_written,
                "excluded": s.excluded,
                "strata": s.strata,
                "tags": list(s.tags),
                "generation": s.generation,
            }
            for s in m.sessions
        ],
    }


def format_summary(info: dict[str, Any]) -> str:
    """``summary()`` as the text ``kartdata info`` prints."""
    enc, cls = info["encoding"], info["classes"]
    comp = enc["compression"] or "uncompressed"
    lines = [
        f"dataset {info['dataset']}  generation {info['generation']}  updated {info['updated']}",
        f"  images {enc['image']} q{enc['quality']} within {enc['max_width']}x{enc['max_height']}, "
        f"records {comp}; steering left x < {cls['left_below']}, right x > {cls['right_above']}",
        f"  {info['frames']} frames in {info['shards']} shards, {info['bytes'] / 1e6:.1f} MB "
        f"({info['bytes_per_frame'] / 1e3:.1f} KB/frame), {len(info['sessions'])} sessions",
        "  strata:",
    ]
    for st, n in info["strata"].items():
        share = n / info["frames"] if info["frames"] else 0.0
        shards = info["shards_per_stratum"][st]
        lines.append(f"    {st:<20} {n:>9} frames {share:6.1%}  {shards} shard(s)")
    if info["excluded"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(info["excluded"].items()))
        lines.append(f"  excluded by validation: {reasons}")
    lines.append("  sessions:")
    for s in info["sessions"]:
        excl = sum(s["excluded"].values())
        lines.append(
            f"    {s['key']:<28} {s['layout']:<10} {s['track']:<14} {s['size']:>9} "
            f"{s['frames_written']:>7}/{s['frames_total']} frames"
            + (f" ({excl} excluded)" if excl else "")
            + f"  {s['source']}"
        )
    return "\n".join(lines)
