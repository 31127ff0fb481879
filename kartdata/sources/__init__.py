"""Readers for every recording layout, all yielding the same :class:`Frame`.

Readers never modify what they read. Each streams: memory is bounded by one
frame (or one source file for layouts that pack frames into one file).
"""

from __future__ import annotations

from pathlib import Path

from kartdata.errors import SourceError
from kartdata.sources.base import Frame, Source
from kartdata.sources.native import NativeSession

__all__ = ["Frame", "NativeSession", "Source", "SourceError", "discover", "open_source"]


def open_source(path: str | Path, *, trust_pickle: bool = False, key: str | None = None) -> Source:
    """Open one recording, guessing its layout from what the path holds.

    ``key``: the recording's key computed earlier in this run (it reads every
    frame), to reuse rather than compute again."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or directory")
    if p.is_dir():
        try:
            names = {c.name for c in p.iterdir()}
        except PermissionError:
            raise SourceError(f"{p}: directory is not readable (permission denied)") from None
        if "session.json" in names:
            return NativeSession(p, key=key)
        if "data.csv" in names:
            from kartdata.sources.tensorkart import TensorKartSession

            return TensorKartSession(p, key=key)
        raise SourceError(f"{p}: not a recording (no session.json or data.csv)")
    if p.suffix == ".npy":
        from kartdata.sources.ctr import CtrFile

        return CtrFile(p, trust_pickle=trust_pickle, key=key)
    raise SourceError(f"{p}: not a recording (expected a session directory or a CTR-AI .npy)")


def discover(paths: list[str | Path], *, trust_pickle: bool = False) -> list[Source]:
    """Every recording under ``paths``: each path is a recording, or a directory
    whose descendants are (searched depth-first, sorted, so the order is stable)."""
    found: list[Source] = []
    for path in paths:
        p = Path(path)
        if not p.exists():
            raise SourceError(f"{p}: no such file or directory")
        if p.is_file() or _is_recording_dir(p):
            found.append(open_source(p, trust_pickle=trust_pickle))
            continue
        before = len(found)
        for child in _walk(p):
            found.append(open_source(child, trust_pickle=trust_pickle))
        if len(found) == before:
            raise SourceError(f"{p}: no recordings found inside")
    return found


def _is_recording_dir(p: Path) -> bool:
    try:
        return p.is_dir() and ((p / "session.json").exists() or (p / "data.csv").exists())
    except PermissionError:
        raise SourceError(f"{p}: directory is not readable (permission denied)") from None


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    try:
        children = sorted(root.iterdir())
    except PermissionError:
        raise SourceError(f"{root}: directory is not readable (permission denied)") from None
    for c in children:
        if c.is_dir():
            if _is_recording_dir(c):
                out.append(c)
            else:
                out.extend(_walk(c))
        elif c.suffix == ".npy":
            out.append(c)
    return out
