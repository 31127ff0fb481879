"""How the game's view moved between two frames, measured on the pixels.

When the kart turns left the camera turns with it and the scenery slides
right across the screen (and left for a right turn). The shift is found on
the band above the horizon (the top HUD and the bottom HUD stay put): each
column's mean brightness in the band, matched against the other frame's at
every shift within ``max_shift`` by normalised correlation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

#: Rows of the frame the profile is taken from (fractions of its height):
#: below the race timer, above the kart and the minimap.
BAND = (0.25, 0.45)


def _profile(image: np.ndarray) -> np.ndarray:
    h = image.shape[0]
    band = image[int(h * BAND[0]) : int(h * BAND[1])].astype(np.float32).mean(axis=2)
    p = band.mean(axis=0)
    return p - p.mean()


def horizontal_shift(before: np.ndarray, after: np.ndarray, max_shift: int = 30) -> int:
    """Pixels the scenery moved right from ``before`` to ``after`` (negative: left)."""
    a, b = _profile(before), _profile(after)
    w = len(a)
    best, best_s = -2.0, 0
    for s in range(-max_shift, max_shift + 1):
        lo, hi = max(0, s), min(w, w + s)
        u, v = b[lo:hi], a[lo - s : hi - s]
        u, v = u - u.mean(), v - v.mean()
        c = float(u @ v) / (float(np.linalg.norm(u) * np.linalg.norm(v)) + 1e-9)
        if c > best:
            best, best_s = c, s
    return best_s


def total_shift(frames: Sequence[np.ndarray]) -> int:
    """The scenery's movement summed over consecutive distinct frames."""
    total = 0
    for a, b in itertools.pairwise(frames):
        if not np.array_equal(a, b):
            total += horizontal_shift(a, b)
    return total
