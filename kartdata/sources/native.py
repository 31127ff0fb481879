"""kartkit's own session layout: reader and the append-only, crash-safe writer.

::

    SESSION/
      session.json          SessionMeta (schema.SessionMeta.to_json)
      controls.csv          header CONTROL_COLUMNS, one row per frame, appended
      frames/00000000.png   one image per row, named by frame index

A row is appended only after its image file is complete (written under a
temporary name, then renamed), and each row goes out in one ``write`` on an
``O_APPEND`` descriptor, so a writer killed at any moment leaves a readable
session: at worst an image without a row and a final line without its newline,
which the reader reports and leaves out.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kartdata import fs
from kartdata.errors import SourceError
from kartdata.schema import (
    CONTROL_COLUMNS,
    CONTROLS_FILE,
    FRAMES_DIR,
    SESSION_FILE,
    TAG_SEPARATOR,
    Pad,
    SchemaError,
    SessionMeta,
    frame_filename,
)
from kartdata.sources.base import Frame, fingerprint, frames_fingerprint, load_image_file


class TornRowWarning(UserWarning):
    """The controls table ends in a partial row (a writer was killed mid-append)."""


class NativeSession:
    """Reads a native session directory."""

    layout = "native"

    def __init__(self, path: str | Path, *, key: str | None = None) -> None:
        """``key``: this recording's key as computed earlier (the sharder hands
        its workers the key it matched, so they do not read every frame again)."""
        self.path = Path(path)
        self._meta: SessionMeta | None = None
        self._key = key

    @property
    def meta(self) -> SessionMeta:
        if self._meta is None:
            f = self.path / SESSION_FILE
            try:
                obj = json.loads(f.read_text())
            except FileNotFoundError:
                raise SourceError(f"{f}: missing") from None
            except PermissionError:
                raise SourceError(f"{f}: not readable (permission denied)") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise SourceError(f"{f}: not valid JSON ({e})") from None
            try:
                self._meta = SessionMeta.from_json(obj, where=str(f))
            except SchemaError as e:
                raise SourceError(str(e)) from None
        return self._meta

    @property
    def key(self) -> str:
        if self._key is None:
            tables = fingerprint(self.path / SESSION_FILE, self.path / CONTROLS_FILE)
            self._key = f"native-{tables}-{frames_fingerprint(self._image_files())}"
        return self._key

    def _image_files(self) -> list[str]:
        """Every finished image in ``frames/``, by name (a ``.part`` is a write
        in progress, never a frame)."""
        try:
            with os.scandir(self.path / FRAMES_DIR) as it:
                names = sorted(e.name for e in it if e.is_file() and not e.name.endswith(".part"))
        except FileNotFoundError:
            return []
        except PermissionError:
            raise SourceError(
                f"{self.path / FRAMES_DIR}: directory is not readable (permission denied)"
            ) from None
        root = str(self.path / FRAMES_DIR)
        return [os.path.join(root, n) for n in names]

    @property
    def controls_path(self) -> Path:
        return self.path / CONTROLS_FILE

    def frames(self) -> Iterator[Frame]:
        meta = self.meta
        session_tags = tuple(meta.tags)
        for line, row in self._rows():
            where = f"{self.controls_path}:{line}"
            try:
                index = int(row["frame"])
                t_ns = int(row["t_ns"])
                pad = Pad.from_mapping(row)
            except (SchemaError, ValueError) as e:
                raise SourceError(f"{where}: {e}") from None
            row_tags = tuple(t for t in (row.get("tags") or "").split(TAG_SEPARATOR) if t)
            tags = tuple(dict.fromkeys(session_tags + row_tags))
            img_path = self.path / frame_filename(index, meta.image_format)
            yield Frame(
                index=index,
                t_ns=t_ns,
                pad=pad,
                tags=tags,
                where=str(img_path),
                line=line,
                _load=_loader(img_path, index),
                file=str(img_path),
            )

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row) for each complete row; frame indexes must increase."""
        path = self.controls_path
        try:
            f = path.open("r", newline="", encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(f"{path}: missing") from None
        except PermissionError:
            raise SourceError(f"{path}: not readable (permission denied)") from None
        with f:
            header_line = f.readline()
            header = next(csv.reader([header_line]), [])
            missing = [c for c in CONTROL_COLUMNS if c not in header]
            if missing:
                raise SourceError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
            last = -1
            for line, text in enumerate(f, start=2):
                if not text.endswith("\n"):
                    warnings.warn(
                        f"{path}:{line}: partial last row left out (writer was interrupted)",
                        TornRowWarning,
                        stacklevel=2,
                    )
                    return
                if not text.strip():
                    continue
                values = next(csv.reader([text]))
                if len(values) != len(header):
                    raise SourceError(
                        f"{path}:{line}: {len(values)} fields, header has {len(header)}"
                    )
                row = dict(zip(header, values, strict=True))
                try:
                    idx = int(row["frame"])
                except ValueError:
                    raise SourceError(
                        f"{path}:{line}: frame {row['frame']!r} is not an integer"
                    ) from None
                if idx <= last:
                    raise SourceError(
                        f"{path}:{line}: frame index {idx} does not increase (previous {last})"
                    )
                last = idx
                yield line, row


def _loader(path: Path, index: int):  # -> Callable[[], np.ndarray]
    return lambda: load_image_file(path, index)


class SessionWriter:
    """Appends frames to a new native session, crash-safe.

    Use as a context manager. ``discard_last(n)`` drops the newest rows (the
    recorder's "discard the last N seconds" hotkey) by rewriting the table
    atomically.
    """

    def __init__(
        self,
        path: str | Path,
        meta: SessionMeta,
        *,
        fsync_every: int = 0,
    ) -> None:
        self.path = Path(path)
        if meta.created == "":
            meta = _replace_created(meta)
        self.meta = meta
        self.fsync_every = fsync_every
        if (self.path / SESSION_FILE).exists() or (self.path / CONTROLS_FILE).exists():
            raise SourceError(f"{self.path}: a session already exists here; refusing to overwrite")
        (self.path / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
        fs.atomic_write(
            str(self.path / SESSION_FILE), (json.dumps(meta.to_json(), indent=2) + "\n").encode()
        )
        self._fd = os.open(self.path / CONTROLS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, (",".join(CONTROL_COLUMNS) + "\n").encode())
        self._next = 0
        self._written = 0
        self._closed = False

    @property
    def frames_written(self) -> int:
        return self._written

    @property
    def next_index(self) -> int:
        return self._next

    def write(
        self,
        image: np.ndarray | bytes,
        pad: Pad,
        *,
        t_ns: int | None = None,
        tags: Iterable[str] = (),
        index: int | None = None,
    ) -> int:
        """Write one frame: ``image`` as an (H, W, 3) uint8 array or already
        encoded bytes in the session's image format. Returns the frame index."""
        if self._closed:
            raise ValueError("session writer is closed")
        idx = self._next if index is None else index
        if idx < self._next:
            raise ValueError(f"frame index {idx} does not increase (next is {self._next})")
        t = time.monotonic_ns() if t_ns is None else t_ns
        data = image if isinstance(image, bytes) else encode_image(image, self.meta.image_format)
        target = self.path / frame_filename(idx, self.meta.image_format)
        tmp = target.with_name(target.name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        values = pad.to_mapping()
        tag_text = TAG_SEPARATOR.join(t for t in tags if t)
        if any(c in tag_text for c in ',"\n'):
            raise ValueError(f"tags {tag_text!r} may not hold commas, quotes or newlines")
        row = [str(idx), str(t)]
        row += [
            repr(float(values[k])) if k in ("x", "y") else str(values[k])
            for k in CONTROL_COLUMNS[2:-1]
        ]
        row.append(tag_text)
        os.write(self._fd, (",".join(row) + "\n").encode())
        self._written += 1
        self._next = idx + 1
        if self.fsync_every and self._written % self.fsync_every == 0:
            os.fsync(self._fd)
        return idx

    def discard_last(self, n: int) -> int:
        """Drop the newest ``n`` rows and their images; returns how many went."""
        if n <= 0 or self._written == 0:
            return 0
        table = self.path / CONTROLS_FILE
        lines = table.read_text().splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        keep, drop = rows[: max(0, len(rows) - n)], rows[max(0, len(rows) - n) :]
        os.close(self._fd)
        fs.atomic_write(str(table), (header + "".join(keep)).encode())
        self._fd = os.open(table, os.O_WRONLY | os.O_APPEND)
        for r in drop:
            idx = int(r.split(",", 1)[0])
            (self.path / frame_filename(idx, self.meta.image_format)).unlink(missing_ok=True)
        self._written -= len(drop)
        return len(drop)

    def close(self) -> None:
        if not self._closed:
            os.fsync(self._fd)
            os.close(self._fd)
            self._closed = True

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_image(image: np.ndarray, image_format: str = "png") -> bytes:
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    buf = io.BytesIO()
    if image_format == "png":
        # compress_level 1: recording must keep up with the game; disk is cheap.
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    else:
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _replace_created(meta: SessionMeta) -> SessionMeta:
    from dataclasses import replace

    return replace(meta, created=datetime.now(UTC).isoformat(timespec="seconds"))
