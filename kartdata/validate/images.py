"""Per-frame image verdicts that need no reference: unreadable, wrong size,
black, blank, frozen."""

from __future__ import annotations

import numpy as np

from kartdata.validate.config import ImageChecks
from kartdata.validate.features import Features

#: Reasons, strongest first: a frame gets the first that applies.
CORRUPT = "corrupt"
WRONG_SIZE = "wrong-size"
BLACK = "black"
BLANK = "blank"
FROZEN = "frozen"
DESKTOP = "desktop"
REASONS: tuple[str, ...] = (CORRUPT, WRONG_SIZE, BLACK, BLANK, FROZEN, DESKTOP)


def image_reasons(feats: Features, width: int, height: int, cfg: ImageChecks) -> list[str | None]:
    """The reason each frame is bad, or ``None``; ``width``/``height`` are the
    session's capture size (0 for "any")."""
    n = len(feats)
    out: list[str | None] = [None] * n
    ok = feats.ok
    for k in range(n):
        if not ok[k]:
            out[k] = CORRUPT
        elif (width and feats.width[k] != width) or (height and feats.height[k] != height):
            out[k] = WRONG_SIZE
        elif feats.lum_max[k] <= cfg.black_max:
            out[k] = BLACK
        elif feats.lum_std[k] < cfg.blank_std:
            out[k] = BLANK
    for k in frozen_frames(feats.diff_prev, cfg):
        if out[k] is None:
            out[k] = FROZEN
    return out


def frozen_frames(diff_prev: np.ndarray, cfg: ImageChecks) -> list[int]:
    """Positions that repeat the frame before them, in runs of at least
    ``frozen_min_repeats`` repeats; the first image of a run is the real one
    and is kept."""
    same = np.nan_to_num(diff_prev, nan=np.inf) < cfg.frozen_diff
    out: list[int] = []
    k, n = 0, len(same)
    while k < n:
        if not same[k]:
            k += 1
            continue
        j = k
        while j < n and same[j]:
            j += 1
        if j - k >= cfg.frozen_min_repeats:
            out.extend(range(k, j))
        k = j
    return out
