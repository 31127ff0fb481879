"""A contact sheet of flagged frames, for a person to confirm at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kartdata.errors import KartError, SourceError
from kartdata.validate.analyse import SessionResult
from kartdata.validate.report import worst_frames

TILE = (160, 120)


def write_gallery(
    results: Sequence[SessionResult], out: str | Path, *, limit: int = 64, columns: int = 8
) -> int:
    """Writes a PNG of up to ``limit`` flagged frames (surest first), each
    labelled with its reason and frame; returns how many it shows."""
    from PIL import Image, ImageDraw

    by_path = {r.path: r for r in results}
    picked = worst_frames(results, limit)
    tw, th = TILE
    label_h = 14
    rows = max(1, -(-len(picked) // columns))
    sheet = Image.new("RGB", (columns * tw, rows * (th + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for k, (path, idx, reason, _) in enumerate(picked):
        x, y = (k % columns) * tw, (k // columns) * (th + label_h)
        frame = by_path[path].frame_refs.get(idx)
        tile = None
        if frame is not None:
            try:
                tile = Image.fromarray(np.asarray(frame.image())).resize(TILE)
            except SourceError:
                tile = None
        if tile is None:  # unreadable: a red tile says so
            tile = Image.new("RGB", TILE, (120, 0, 0))
        sheet.paste(tile, (x, y))
        draw.text(
            (x + 2, y + th + 1), f"{reason} #{idx} {Path(path).name}"[:26], fill=(255, 255, 0)
        )
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out, format="PNG")
    except OSError as e:
        raise KartError(f"{out}: cannot write the gallery ({e.strerror or e})") from None
    return len(picked)
