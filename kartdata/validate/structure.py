"""Structure and schema: metadata, every row of the controls table (each bad
row reported with its line, and the rest still checked), frames referenced but
missing, files present but referenced by no row."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kartdata.errors import SourceError
from kartdata.schema import (
    CONTROL_COLUMNS,
    FRAMES_DIR,
    TAG_SEPARATOR,
    Pad,
    SchemaError,
    SessionMeta,
    frame_filename,
)
from kartdata.sources.base import Frame, Source
from kartdata.sources.native import NativeSession
from kartdata.validate.issues import Issue, error, warning

CHECK = "structure"


@dataclass(slots=True)
class Structure:
    """A session's readable frames and what is wrong with its layout."""

    meta: SessionMeta | None
    frames: list[Frame] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    #: Nothing can be validated (no metadata, no table).
    unusable: bool = False
    #: Frame index → the image file it references is missing.
    missing: set[int] = field(default_factory=set)


def read_structure(source: Source) -> Structure:
    try:
        meta = source.meta
    except SourceError as e:
        return Structure(meta=None, issues=[error(CHECK, str(e))], unusable=True)
    if isinstance(source, NativeSession):
        return _native(source, meta)
    return _generic(source, meta)


def _generic(source: Source, meta: SessionMeta) -> Structure:
    """Layouts whose reader stops at the first bad row: report that row; the
    frames before it are still checked."""
    st = Structure(meta=meta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for f in source.frames():
                st.frames.append(f)
        except SourceError as e:
            st.issues.append(error(CHECK, f"{e} (rows after it not checked)"))
            if not st.frames:
                st.unusable = True
    st.issues.extend(warning(CHECK, str(w.message)) for w in caught)
    return st


def _native(source: NativeSession, meta: SessionMeta) -> Structure:
    st = Structure(meta=meta)
    path = source.controls_path
    try:
        f = path.open("r", newline="", encoding="utf-8")
    except OSError as e:
        st.issues.append(error(CHECK, f"{path}: cannot read ({e.strerror or e})"))
        st.unusable = True
        return st
    referenced: set[str] = set()
    with f:
        header = next(csv.reader([f.readline()]), [])
        missing_cols = [c for c in CONTROL_COLUMNS if c not in header]
        if missing_cols:
            st.issues.append(
                error(CHECK, f"{path}:1: header lacks column(s) {', '.join(missing_cols)}", line=1)
            )
            st.unusable = True
            return st
        last = -1
        try:
            lines = list(enumerate(f, start=2))
        except UnicodeDecodeError as e:
            st.issues.append(error(CHECK, f"{path}: not UTF-8 text ({e})"))
            st.unusable = True
            return st
    root = str(source.path)
    for line, text in lines:
        where = f"{path}:{line}"
        if not text.endswith("\n"):
            st.issues.append(
                warning(CHECK, f"{where}: partial last row (writer was interrupted)", line=line)
            )
            break
        if not text.strip():
            continue
        # unquoted rows (all that SessionWriter writes) split as csv would split them
        values = text.rstrip("\r\n").split(",") if '"' not in text else next(csv.reader([text]), [])
        if len(values) != len(header):
            st.issues.append(
                error(CHECK, f"{where}: {len(values)} fields, header has {len(header)}", line=line)
            )
            continue
        row = dict(zip(header, values, strict=True))
        try:
            index = int(row["frame"])
            t_ns = int(row["t_ns"])
        except ValueError:
            st.issues.append(
                error(
                    CHECK,
                    f"{where}: frame/t_ns {row['frame']!r}/{row['t_ns']!r} not integers",
                    line=line,
                )
            )
            continue
        if index <= last:
            st.issues.append(
                error(
                    CHECK,
                    f"{where}: frame index {index} does not increase (previous {last})",
                    frame=index,
                    line=line,
                )
            )
            continue
        last = index
        name = frame_filename(index, meta.image_format)
        referenced.add(name)
        try:
            pad = Pad.from_mapping(row)
        except SchemaError as e:
            st.issues.append(error("controls", f"{where}: {e}", frame=index, line=line))
            continue
        row_tags = tuple(t for t in (row.get("tags") or "").split(TAG_SEPARATOR) if t)
        img = os.path.join(root, name)  # a str: pathlib costs more than the row's parse
        st.frames.append(
            Frame(
                index=index,
                t_ns=t_ns,
                pad=pad,
                tags=tuple(dict.fromkeys(tuple(meta.tags) + row_tags)),
                where=img,
                line=line,
                _load=_file_loader(img, index),
            )
        )
    _files(source.path, referenced, st)
    return st


def _file_loader(path: str, index: int) -> Callable[[], np.ndarray]:
    from kartdata.sources.base import load_image_file

    return lambda: load_image_file(path, index)


def _files(root: Path, referenced: set[str], st: Structure) -> None:
    frames_dir = root / FRAMES_DIR
    try:
        present = {f"{FRAMES_DIR}/{n}" for n in os.listdir(frames_dir)}
    except FileNotFoundError:
        present = set()
        if referenced:
            st.issues.append(error(CHECK, f"{frames_dir}: missing"))
    except OSError as e:
        st.issues.append(error(CHECK, f"{frames_dir}: cannot list ({e.strerror})"))
        return
    by_name = {f"{FRAMES_DIR}/{os.path.basename(f.where)}": f for f in st.frames}
    for name in sorted(referenced - present):
        f = by_name.get(name)
        if f is None:  # its row is bad and reported already
            continue
        st.missing.add(f.index)
        st.issues.append(
            error(
                CHECK,
                f"{root / name}: frame {f.index}: image file is missing",
                frame=f.index,
                line=f.line,
            )
        )
    extra = sorted(present - referenced)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        st.issues.append(
            warning(CHECK, f"{root}: {len(extra)} file(s) referenced by no row: {shown}")
        )
