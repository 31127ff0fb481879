"""Matplotlib plots of a dataset and of :func:`kartdata.views.frames` tables, for notebooks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from kartdata.loader import balance_report
from kartdata.schema import BUTTONS, STEERING_CLASSES
from kartdata.views import frame_image, record_image


def plot_class_mix(
    dataset: str, balance: Any = "uniform", recovery_weight: float = 1.0, ax: Any = None, **load
) -> Any:
    """Bars of the steering-class mix of the split as recorded and as the
    loader samples it with ``balance``/``recovery_weight``."""
    import matplotlib.pyplot as plt

    report = balance_report(dataset, balance=balance, recovery_weight=recovery_weight, **load)
    before, after = report.natural_mix(), report.class_mix()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    xs = np.arange(len(STEERING_CLASSES))
    ax.bar(xs - 0.2, [before[c] for c in STEERING_CLASSES], 0.4, label="recorded")
    ax.bar(xs + 0.2, [after[c] for c in STEERING_CLASSES], 0.4, label=f"balanced ({balance})")
    ax.set_xticks(xs, list(STEERING_CLASSES))
    ax.set_ylabel("share of samples")
    ax.legend()
    return ax


def plot_steering(df: Any, by: str = "track", bins: int = 41, ax: Any = None) -> Any:
    """Histogram of stick x, one line per value of ``by`` (a :func:`frames` column)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    edges = np.linspace(-1, 1, bins + 1)
    for name, group in df.groupby(by, observed=True):
        counts, _ = np.histogram(group["x"], bins=edges)
        ax.stairs(counts / max(len(group), 1), edges, label=str(name))
    ax.set_xlabel("stick x (left < 0 < right)")
    ax.set_ylabel("share of frames")
    ax.legend(fontsize="small")
    return ax


def plot_frames(dataset: str, rows: Any, columns: int = 4, size: float = 2.5) -> Any:
    """A strip of frames (rows of :func:`frames`) with their controls as titles."""
    import matplotlib.pyplot as plt

    rows = list(_iter_rows(rows))
    n = max(len(rows), 1)
    ncols = min(columns, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * 0.8 * nrows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows, strict=False):
        if row.get("shard"):
            image = record_image(dataset, row["shard"], int(row["record"]))
        else:
            image = frame_image(dataset, row["session"], int(row["frame"]))
        ax.imshow(image)
        if row.get("excluded") or np.isnan(float(row.get("x", np.nan))):
            title = f"#{int(row['frame'])} (not in the shards)"
        else:
            pressed = [b for b in BUTTONS if int(row.get(b, 0))]
            title = f"#{int(row['frame'])} x={float(row['x']):+.2f} {' '.join(pressed)}"
        if row.get("verdict"):
            title += f"\n{row['verdict']}"
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def _iter_rows(rows: Any) -> Iterable[dict[str, Any]]:
    if hasattr(rows, "to_dict"):
        yield from rows.to_dict("records")
    else:
        yield from rows
