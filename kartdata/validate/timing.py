"""Timing: timestamps that do not increase, gaps, achieved against nominal rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kartdata.sources.base import Frame
from kartdata.validate.config import TimingChecks
from kartdata.validate.issues import Issue, error, warning

CHECK = "timing"


@dataclass(frozen=True, slots=True)
class Rate:
    nominal: float
    achieved: float
    gaps: int


def check_timing(
    where: str, frames: Sequence[Frame], fps: float, cfg: TimingChecks
) -> tuple[list[Issue], Rate]:
    out: list[Issue] = []
    if len(frames) < 2:
        return out, Rate(fps, 0.0, 0)
    t = np.array([f.t_ns for f in frames], dtype=np.int64)
    step = np.diff(t)
    for k in np.flatnonzero(step <= 0)[:20]:
        f = frames[k + 1]
        out.append(
            error(
                CHECK,
                f"{where}: frame {f.index}: timestamp {f.t_ns} does not increase "
                f"(previous {frames[k].t_ns})",
                frame=f.index,
                line=f.line,
            )
        )
    bad = int((step <= 0).sum())
    if bad > 20:
        out.append(error(CHECK, f"{where}: {bad - 20} more timestamps do not increase"))
    span = float(t[-1] - t[0])
    achieved = (len(t) - 1) / (span / 1e9) if span > 0 else 0.0
    gaps = 0
    if fps > 0:
        period = 1e9 / fps
        gap_at = np.flatnonzero(step > cfg.gap_periods * period)
        gaps = len(gap_at)
        for k in gap_at[:10]:
            f = frames[k + 1]
            out.append(
                warning(
                    CHECK,
                    f"{where}: frame {f.index}: gap of {step[k] / 1e6:.0f} ms before it "
                    f"({step[k] / period:.1f} frame periods)",
                    frame=f.index,
                    line=f.line,
                )
            )
        if gaps > 10:
            out.append(warning(CHECK, f"{where}: {gaps - 10} more gaps"))
        if achieved and achieved < cfg.min_rate_share * fps:
            out.append(
                warning(
                    CHECK,
                    f"{where}: achieved {achieved:.2f} frames/s, nominal {fps:g} "
                    f"({100 * achieved / fps:.0f} %)",
                )
            )
    return out, Rate(fps, achieved, gaps)
