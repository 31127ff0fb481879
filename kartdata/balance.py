"""Class balance and recovery oversampling, as sampling weights over strata.

Shards are written per stratum (steering class x recovery), so a target mix is
reached by drawing from per-stratum streams with these weights — no frame is
read only to be thrown away. Within a class, recovery frames count
``recovery_weight`` times as much as the others.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kartdata.errors import DatasetError
from kartdata.schema import STEERING_CLASSES, STRATA, parse_stratum

#: ``None`` keeps the recorded class mix, ``"uniform"`` gives each steering
#: class the same share, a mapping gives explicit (relative) class weights.
Balance = None | str | Mapping[str, float]


@dataclass(frozen=True)
class StratumPlan:
    stratum: str
    frames: int  # frames of this stratum in the split
    weight: float  # probability that a sample comes from this stratum
    samples: float  # expected samples per epoch
    repeats: float  # samples / frames: how often each frame is seen per epoch


@dataclass(frozen=True)
class BalancePlan:
    rows: tuple[StratumPlan, ...]
    epoch_samples: int
    balance: Any
    recovery_weight: float

    @property
    def weights(self) -> dict[str, float]:
        return {r.stratum: r.weight for r in self.rows}

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.rows)

    def class_mix(self) -> dict[str, float]:
        """Expected share of each steering class among the samples."""
        out = dict.fromkeys(STEERING_CLASSES, 0.0)
        for r in self.rows:
            out[parse_stratum(r.stratum)[0]] += r.weight
        return out

    def natural_mix(self) -> dict[str, float]:
        """Share of each steering class among the split's frames."""
        out = dict.fromkeys(STEERING_CLASSES, 0.0)
        total = self.frames or 1
        for r in self.rows:
            out[parse_stratum(r.stratum)[0]] += r.frames / total
        return out

    def recovery_share(self) -> float:
        return sum(r.weight for r in self.rows if parse_stratum(r.stratum)[1])

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.rows]).set_index("stratum")

    def __str__(self) -> str:
        lines = [f"{'stratum':<20}{'frames':>10}{'weight':>9}{'samples':>11}{'repeats':>9}"]
        for r in self.rows:
            lines.append(
                f"{r.stratum:<20}{r.frames:>10}{r.weight:>9.3f}{r.samples:>11.0f}{r.repeats:>9.2f}"
            )
        lines.append(f"epoch: {self.epoch_samples} samples from {self.frames} frames")
        return "\n".join(lines)


def target_mix(balance: Balance, counts: Mapping[str, int]) -> dict[str, float]:
    """Steering class → share of samples (sums to 1)."""
    per_class = dict.fromkeys(STEERING_CLASSES, 0)
    for stratum, n in counts.items():
        per_class[parse_stratum(stratum)[0]] += n
    if balance is None:
        raw = {c: float(n) for c, n in per_class.items()}
    elif balance == "uniform":
        raw = dict.fromkeys(STEERING_CLASSES, 1.0)
    elif isinstance(balance, Mapping):
        unknown = set(balance) - set(STEERING_CLASSES)
        if unknown:
            raise DatasetError(
                f"balance names unknown class(es) {sorted(unknown)}; classes are {STEERING_CLASSES}"
            )
        raw = {c: float(balance.get(c, 0.0)) for c in STEERING_CLASSES}
        if any(v < 0 for v in raw.values()):
            raise DatasetError(f"balance weights must not be negative: {dict(balance)}")
    else:
        raise DatasetError(f"balance {balance!r} is not None, 'uniform' or {{class: weight}}")
    missing = [c for c in STEERING_CLASSES if raw[c] > 0 and per_class[c] == 0]
    if missing:
        warnings.warn(
            f"no {'/'.join(missing)} frames in this split; balancing over the other classes",
            stacklevel=3,
        )
        for c in missing:
            raw[c] = 0.0
    total = sum(raw.values())
    if total <= 0:
        raise DatasetError("the requested class mix selects no frames of this split")
    return {c: v / total for c, v in raw.items()}


def plan(
    counts: Mapping[str, int],
    balance: Balance = None,
    recovery_weight: float = 1.0,
    epoch_samples: int | None = None,
) -> BalancePlan:
    """Per-stratum sampling weights for ``counts`` (stratum → frames in the split)."""
    if recovery_weight < 0:
        raise DatasetError(f"recovery_weight {recovery_weight} must not be negative")
    counts = {s: int(counts.get(s, 0)) for s in STRATA}
    total = sum(counts.values())
    if total == 0:
        raise DatasetError("no frames to balance (the split is empty)")
    mix = target_mix(balance, counts)
    mass = {s: n * (recovery_weight if parse_stratum(s)[1] else 1.0) for s, n in counts.items()}
    class_mass = dict.fromkeys(STEERING_CLASSES, 0.0)
    for s, m in mass.items():
        class_mass[parse_stratum(s)[0]] += m
    weights: dict[str, float] = {}
    for s in STRATA:
        c = parse_stratum(s)[0]
        weights[s] = mix[c] * mass[s] / class_mass[c] if class_mass[c] > 0 else 0.0
    if sum(weights.values()) <= 0:
        raise DatasetError("recovery_weight 0 leaves no frames to sample")
    norm = sum(weights.values())
    n_epoch = int(epoch_samples) if epoch_samples is not None else total
    if n_epoch <= 0:
        raise DatasetError(f"epoch_samples {epoch_samples} must be positive")
    rows = []
    for s in STRATA:
        w = weights[s] / norm
        samples = w * n_epoch
        rows.append(
            StratumPlan(s, counts[s], w, samples, samples / counts[s] if counts[s] else 0.0)
        )
    return BalancePlan(tuple(rows), n_epoch, balance, recovery_weight)
