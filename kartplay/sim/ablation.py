"""Which data features earn their place: train with each switched off, drive.

Offline loss does not predict driving, so each variant is scored the only way
that counts: closed loop on unseen tracks, as a fraction of the expert. The
variants switch, one at a time, off the full recipe:

- ``balance``: steering classes sampled uniformly (``--balance uniform``);
- ``recovery``: recovery-tagged frames (pushes, learner-driven rounds) in the
  training mix, oversampled 2x (``--recovery-weight 2``; off: weight 0, i.e.
  only clean expert driving);
- ``smoothing``: steering targets averaged over 3 frames (``--smooth 3``) and
  the policy's moving average at play time (``--smoothing 0.3``).

The training seed alone moves one run's closed-loop score by more than most
features do (docs/benchmarks.md), so every variant is trained with each of
``train_seeds`` and ranked by the mean; the per-seed ratios are kept. The
expert drives the evaluation seeds once, not once per run.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kartdata.errors import KartError
from kartdata.split import SplitConfig
from kartdata.targets import TargetConfig
from kartmodel.config import DataOptions
from kartmodel.models import ModelName
from kartplay.policy import PolicyConfig
from kartplay.sim.commands import (
    SIM_TARGETS,
    drive_command,
    export_command,
    run_command,
    sim_train_config,
    train_command,
)
from kartplay.sim.drive import DriveConfig

FEATURES: tuple[str, ...] = ("balance", "recovery", "smoothing")


@dataclass(frozen=True, slots=True)
class AblationConfig:
    dataset: str
    out: Path
    seeds: tuple[int, ...] = (11, 12, 13, 14, 15)
    steps: int = 1000
    model: ModelName = "sepnet"
    epochs: int = 4
    batch_size: int = 64
    #: Each variant is trained once per seed.
    train_seeds: tuple[int, ...] = (1, 2, 3)
    #: Which sessions validate, the same for every run.
    splits: SplitConfig = field(default_factory=SplitConfig)
    #: Variants to run: "all" (every feature on), "none", or "no-<feature>".
    variants: tuple[str, ...] = ("all", *(f"no-{f}" for f in FEATURES), "none")

    def __post_init__(self) -> None:
        if not self.train_seeds or not self.variants:
            raise KartError("the ablation needs training seeds and variants")
        # unknown variants and bad training options fail before any training
        for v in self.variants:
            data, _ = variant_configs(v, self.splits)
            sim_train_config(
                self.dataset, data, model=self.model, epochs=self.epochs, batch_size=self.batch_size
            )
        DriveConfig(seeds=self.seeds, steps=self.steps)


def variant_configs(
    variant: str, splits: SplitConfig = SplitConfig()
) -> tuple[DataOptions, PolicyConfig]:
    """The training data options and the play policy of a variant."""
    if variant == "all":
        off: set[str] = set()
    elif variant == "none":
        off = set(FEATURES)
    elif variant.startswith("no-") and variant[3:] in FEATURES:
        off = {variant[3:]}
    else:
        raise KartError(f"unknown variant {variant!r}: all, none or no-<{'|'.join(FEATURES)}>")
    smoothing = "smoothing" not in off
    data = DataOptions(
        targets=TargetConfig(SIM_TARGETS, smoothing=3 if smoothing else 1),
        splits=splits,
        balance=None if "balance" in off else "uniform",
        recovery_weight=0.0 if "recovery" in off else 2.0,
        augment=False,
    )
    return data, PolicyConfig(smoothing=0.3 if smoothing else 0.0, seed=0)


def run_ablation(c: AblationConfig, echo: Any = print) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    expert_mean: float | None = None
    for v in c.variants:
        data, policy = variant_configs(v, c.splits)
        ratios: list[float] = []
        means: list[float] = []
        for seed in c.train_seeds:
            name = f"{v}/seed{seed}"
            run, model = c.out / "runs" / name, c.out / "models" / name
            report = c.out / "reports" / f"{v}-seed{seed}.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            train = sim_train_config(
                c.dataset,
                data,
                model=c.model,
                epochs=c.epochs,
                batch_size=c.batch_size,
                seed=seed,
            )
            run_command(train_command(train, run), echo=echo)
            run_command(export_command(run, model), echo=echo)
            drive = DriveConfig(seeds=c.seeds, steps=c.steps, with_expert=expert_mean is None)
            run_command(drive_command(model, drive, policy, report), echo=echo)
            rep = json.loads(report.read_text())
            if expert_mean is None:
                expert_mean = float(rep["expert_mean"])
            means.append(float(rep["model_mean"]))
            ratios.append(means[-1] / expert_mean if expert_mean > 0 else float("nan"))
        rows.append(
            {
                "variant": v,
                "model_mean": statistics.fmean(means),
                "expert_mean": expert_mean,
                "ratio": statistics.fmean(ratios),
                "ratio_min": min(ratios),
                "ratios": dict(zip(map(str, c.train_seeds), ratios, strict=True)),
            }
        )
        echo(table(rows))
    (c.out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Mean over the training seeds, the worst seed, then each seed's ratio."""
    lines = [
        f"{'variant':<14} {'model':>8} {'expert':>8} {'model/expert':>13} {'worst':>7}   per seed"
    ]
    lines += [
        f"{r['variant']:<14} {r['model_mean']:>8.1f} {r['expert_mean']:>8.1f} {r['ratio']:>13.3f}"
        f" {r['ratio_min']:>7.3f}   " + " ".join(f"{k}:{x:.3f}" for k, x in r["ratios"].items())
        for r in rows
    ]
    return "\n".join(lines)
