"""Class mix: the steering histogram, and a warning when one class dominates
(the earlier projects' "only drives straight" models started here)."""

from __future__ import annotations

from collections.abc import Sequence

from kartdata.schema import STEERING_CLASSES, ClassThresholds
from kartdata.sources.base import Frame
from kartdata.validate.issues import Issue, warning

CHECK = "class-mix"


def steering_histogram(frames: Sequence[Frame], thresholds: ClassThresholds) -> dict[str, int]:
    hist = dict.fromkeys(STEERING_CLASSES, 0)
    for f in frames:
        hist[thresholds.classify(f.pad.x)] += 1
    return hist


def check_mix(where: str, hist: dict[str, int], dominant_share: float) -> list[Issue]:
    total = sum(hist.values())
    if total == 0:
        return []
    name, top = max(hist.items(), key=lambda kv: kv[1])
    if top / total > dominant_share:
        mix = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in hist.items())
        return [
            warning(
                CHECK,
                f"{where}: {name} dominates the steering classes ({mix}); "
                f"a model trained on it learns to drive {name}",
            )
        ]
    return []
