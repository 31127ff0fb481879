"""The dataset manifest: what a dataset holds, in one versioned JSON file.

::

    DATASET/
      manifest.json                                  this file, replaced atomically
      shards/<stratum>-g<gen>-w<worker>-<seq>.tfrecord[.gz|.zz]
      shards/<same name>.index.csv.gz                INDEX_COLUMNS, one row per record

A shard or index file that ``manifest.json`` does not name is not part of the
dataset (a run that was killed before it finished); the next writer deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kartdata import fs
from kartdata.errors import DatasetError
from kartdata.schema import CONTEXT_RADIUS, SCHEMA_VERSION, STRATA, ClassThresholds

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "kartkit-dataset"
MANIFEST_VERSION = 1

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
        if obj.get("version") != MANIFEST_VERSION:
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
