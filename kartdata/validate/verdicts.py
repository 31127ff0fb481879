"""The verdict store: each recording's excluded frames and why, kept apart from
the recording (sources are never written to).

Verdicts live in ``$KARTKIT_CACHE/verdicts/<key>.json`` (default
``~/.cache/kartkit/verdicts``; ``$XDG_CACHE_HOME`` is honoured), named by the
recording's content fingerprint, so the same recording copied elsewhere finds
its verdicts and an edited one (new key) gets new ones. ``kartdata validate``
writes them for every session it checks (with the desktop detector's reference
built from all sessions given together); :func:`frame_verdicts` reads them, and
validates the one session on its own when there are none.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kartdata import fs
from kartdata.errors import SourceError
from kartdata.sources.base import Source
from kartdata.validate.config import ValidateConfig
from kartdata.validate.features import ImageObserver

FORMAT = "kartkit-verdicts"
VERSION = 1


def default_store() -> Path:
    root = os.environ.get("KARTKIT_CACHE")
    if root:
        return Path(root) / "verdicts"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kartkit" / "verdicts"


def store_path(key: str, store: str | Path | None = None) -> Path:
    return Path(store or default_store()) / f"{key}.json"


def save(
    source_path: str,
    key: str,
    verdicts: dict[int, str],
    *,
    frames: int,
    config: ValidateConfig,
    sessions_together: int = 1,
    store: str | Path | None = None,
) -> Path:
    """Write one recording's verdicts atomically; returns the file."""
    path = store_path(key, store)
    _refuse_inside_source(path, source_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for reason in verdicts.values():
        counts[reason] = counts.get(reason, 0) + 1
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "key": key,
        "source": source_path,
        "config": config.fingerprint(),
        "sessions_together": sessions_together,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "frames": frames,
        "counts": counts,
        "verdicts": {str(k): v for k, v in sorted(verdicts.items())},
    }
    fs.atomic_write(str(path), (json.dumps(obj, indent=1) + "\n").encode())
    return path


def load(key: str, store: str | Path | None = None) -> dict[str, Any] | None:
    """The stored record for ``key``, or ``None`` when there is none (or it is
    unreadable: it is a cache, recomputed rather than trusted)."""
    path = store_path(key, store)
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("key") != key:
        return None
    if obj.get("version") != VERSION or not isinstance(obj.get("verdicts"), dict):
        return None
    return obj


def frame_verdicts(
    source: Source,
    *,
    config: ValidateConfig | None = None,
    store: str | Path | None = None,
    on_image: ImageObserver | None = None,
) -> dict[int, str]:
    """Frame index → reason (``black``, ``blank``, ``frozen``, ``desktop``,
    ``corrupt``, ``missing``, ``wrong-size``) for each frame to exclude.

    Stored verdicts for ``source.key`` are used when present (and, if
    ``config`` is given, made with the same settings); otherwise the session is
    validated on its own and the result stored; ``on_image`` then sees each
    frame's decoded pixels (:func:`~kartdata.validate.features.start_features`).
    """
    key = source.key
    stored = load(key, store)
    if stored is not None and (config is None or stored.get("config") == config.fingerprint()):
        return {int(k): str(v) for k, v in stored["verdicts"].items()}
    from kartdata.validate.analyse import analyse

    cfg = config or ValidateConfig()
    (res,) = analyse([source], cfg, on_image=on_image)
    if res.unusable:
        first = next((i.message for i in res.issues if i.severity == "error"), str(source.path))
        raise SourceError(first)
    save(str(source.path), key, res.verdicts, frames=res.frames, config=cfg, store=store)
    return dict(res.verdicts)


def _refuse_inside_source(path: Path, source_path: str) -> None:
    src = Path(source_path).resolve()
    target = path.resolve()
    inside = src.is_dir() and (target == src or src in target.parents)
    if inside:
        raise SourceError(
            f"{path}: verdict store lies inside the recording {src}; recordings are never written to"
        )
