"""Controls: axes pinned for the whole session, a session with no turning.

NaN and out-of-range values are found row by row while the table is read
(``structure``), since the schema refuses to build a pad from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kartdata.schema import AXES
from kartdata.sources.base import Frame
from kartdata.validate.config import ControlChecks
from kartdata.validate.issues import Issue, warning

CHECK = "controls"


def check_controls(where: str, frames: Sequence[Frame], cfg: ControlChecks) -> list[Issue]:
    if len(frames) < 2:
        return []
    out: list[Issue] = []
    axes = np.array([[f.pad.x, f.pad.y] for f in frames], dtype=np.float64)
    for k, name in enumerate(AXES):
        col = axes[:, k]
        if col.std() <= cfg.stuck_std and col[0] != 0.0:
            out.append(
                warning(
                    CHECK, f"{where}: axis {name} stuck at {col[0]:+.3f} for all {len(col)} frames"
                )
            )
    x = axes[:, 0]
    t = cfg.thresholds
    if not ((x < t.left_below) | (x > t.right_above)).any():
        out.append(
            warning(
                CHECK,
                f"{where}: no turning at all (steering x stays within "
                f"[{t.left_below}, {t.right_above}] for all {len(x)} frames)",
            )
        )
    return out
