"""The manifest's steering / button histograms over written records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kartdata.errors import DatasetError
from kartdata.schema import BUTTONS

#: Bins of the manifest's x / y histograms.
HISTOGRAM_EDGES: tuple[float, ...] = tuple(np.round(np.linspace(-1.0, 1.0, 21), 6).tolist())


def empty_histogram() -> dict[str, Any]:
    zeros = [0] * (len(HISTOGRAM_EDGES) - 1)
    return {
        "x": {"edges": list(HISTOGRAM_EDGES), "counts": list(zeros)},
        "y": {"edges": list(HISTOGRAM_EDGES), "counts": list(zeros)},
        "buttons": dict.fromkeys(BUTTONS, 0),
    }


def merge_histograms(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = empty_histogram()
    for h in (a, b):
        if not h:
            continue
        for axis in ("x", "y"):
            if list(h[axis]["edges"]) != list(HISTOGRAM_EDGES):
                raise DatasetError("manifest histogram has different bin edges; cannot merge")
            out[axis]["counts"] = [
                p + q for p, q in zip(out[axis]["counts"], h[axis]["counts"], strict=True)
            ]
        for name, n in h["buttons"].items():
            out["buttons"][name] = out["buttons"].get(name, 0) + int(n)
    return out


class HistogramCounter:
    """Counts one session's pads into the histogram's bins."""

    def __init__(self) -> None:
        n = len(HISTOGRAM_EDGES) - 1
        self.x = np.zeros(n, np.int64)
        self.y = np.zeros(n, np.int64)
        self.buttons = np.zeros(len(BUTTONS), np.int64)
        self._edges = np.asarray(HISTOGRAM_EDGES)

    def add(self, pad: list[float]) -> None:
        for axis, v in ((self.x, pad[0]), (self.y, pad[1])):
            # right-closed last bin, like np.histogram
            axis[min(int(np.searchsorted(self._edges, v, side="right")) - 1, len(axis) - 1)] += 1
        self.buttons += np.asarray(pad[2:]) >= 0.5

    def to_json(self) -> dict[str, Any]:
        return {
            "x": {"edges": list(HISTOGRAM_EDGES), "counts": self.x.tolist()},
            "y": {"edges": list(HISTOGRAM_EDGES), "counts": self.y.tolist()},
            "buttons": dict(zip(BUTTONS, self.buttons.tolist(), strict=True)),
        }
