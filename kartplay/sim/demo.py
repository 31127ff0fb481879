"""The main job: the whole chain on the simulator, with the tools a user runs.

::

    kartplay sim record   expert tracks, and tracks with mistakes the expert corrects
    kartdata validate     report (simulator frames are exact, so nothing is dropped)
    kartdata shard        one dataset, appended to by every round
    kartmodel train       a small CNN on the 96x96 observation
    kartmodel export
    kartplay sim drive    unseen track seeds, scored against the expert
    then, per learner-driven (DAgger) round:
    kartplay sim record --policy MODEL  → shard (append) → train → export → drive

Each stage is the command-line tool run as a subprocess, its command line built
from this module's configs (:mod:`kartplay.sim.commands`) and printed before it
runs, so the demo is also a worked example of using them by hand.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kartdata.errors import KartError
from kartdata.targets import TargetConfig
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.models import ModelName
from kartplay.policy import PolicyConfig
from kartplay.sim.collect import PerturbConfig, SimRecordConfig
from kartplay.sim.commands import (
    SIM_TARGETS,
    drive_command,
    export_command,
    record_command,
    run_command,
    shard_command,
    sim_train_config,
    train_command,
    validate_command,
)
from kartplay.sim.drive import DriveConfig


def _seeds(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


@dataclass(frozen=True, slots=True)
class DemoConfig:
    out: Path = Path("demo")
    #: Track seeds driven cleanly by the expert, and with pushes off the line.
    expert_seeds: tuple[int, ...] = _seeds(100, 107)
    perturbed_seeds: tuple[int, ...] = _seeds(108, 115)
    #: One tuple of seeds per learner-driven round (none: offline only).
    dagger_seeds: tuple[tuple[int, ...], ...] = (_seeds(116, 123), _seeds(124, 131))
    #: Unseen tracks the closed-loop score is measured on.
    eval_seeds: tuple[int, ...] = (11, 12, 13, 14, 15)
    #: How every track is recorded; the perturbed ones add :attr:`perturb`, the
    #: learner-driven ones the previous round's model.
    record: SimRecordConfig = field(default_factory=lambda: SimRecordConfig(steps=1000, every=2))
    #: Mistakes in the perturbed recordings: per second, and the share of them
    #: that are overspeeds (see kartplay.sim.collect).
    perturb: PerturbConfig = field(default_factory=lambda: PerturbConfig(rate=0.5, overspeed=0.5))
    eval_steps: int = 1000
    model: ModelName = "sepnet"
    epochs: int = 4
    batch_size: int = 64
    seed: int = 1
    #: The loader's options for training (the targets are always steer, gas, brake).
    data: DataOptions = field(
        default_factory=lambda: DataOptions(
            targets=TargetConfig(SIM_TARGETS, smoothing=3), recovery_weight=2.0, augment=False
        )
    )
    #: The play-side policy on the evaluation tracks.
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(smoothing=0.3, seed=0))
    workers: int = 0

    def __post_init__(self) -> None:
        used = set(self.expert_seeds + self.perturbed_seeds).union(*self.dagger_seeds)
        if used & set(self.eval_seeds):
            raise KartError(f"evaluation seeds {sorted(used & set(self.eval_seeds))} were recorded")
        if self.perturb.rate <= 0:
            raise KartError("the perturbed recordings need a perturbation rate > 0")
        # fails now, not after an hour of recording
        self.train_config(self.out / "dataset")

    @classmethod
    def sized(cls, tracks: int, rounds: int, base: int = 100, **options: Any) -> DemoConfig:
        """``tracks`` consecutive seeds from ``base`` on for each recording kind:
        expert, perturbed, then each of ``rounds`` learner-driven rounds."""
        if tracks < 1 or rounds < 0:
            raise KartError(f"tracks {tracks} must be ≥ 1 and rounds {rounds} ≥ 0")

        def kind(i: int) -> tuple[int, ...]:
            return tuple(range(base + i * tracks, base + (i + 1) * tracks))

        return cls(
            expert_seeds=kind(0),
            perturbed_seeds=kind(1),
            dagger_seeds=tuple(kind(2 + r) for r in range(rounds)),
            **options,
        )

    def train_config(self, dataset: Path) -> TrainConfig:
        return sim_train_config(
            dataset,
            self.data,
            model=self.model,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=self.seed,
        )


@dataclass(slots=True)
class DemoResult:
    stages: list[tuple[str, float]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    gif: str | None = None
    plot: str | None = None

    def table(self) -> str:
        lines = ["stage                                seconds"]
        lines += [f"{name:<36} {secs:>8.1f}" for name, secs in self.stages]
        lines.append(f"{'total':<36} {sum(s for _, s in self.stages):>8.1f}")
        lines.append("")
        lines.append("round      frames   model mean   expert mean   model/expert")
        for r in self.rounds:
            lines.append(
                f"{r['round']:<10} {r['frames']:>6} {r['model_mean']:>12.1f} "
                f"{r['expert_mean']:>13.1f} {r['ratio']:>14.3f}"
            )
        if self.gif:
            lines.append(f"\nvideo: {self.gif}")
        if self.plot:
            lines.append(f"plot:  {self.plot}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [{"stage": n, "seconds": round(s, 1)} for n, s in self.stages],
            "rounds": self.rounds,
            "gif": self.gif,
            "plot": self.plot,
        }


def run_demo(config: DemoConfig = DemoConfig(), echo: Any = print) -> DemoResult:
    c = config
    out = c.out
    rec, ds = out / "recordings", out / "dataset"
    for p in (rec, ds, out / "runs", out / "models", out / "drive"):
        if p.exists() and any(p.iterdir()):
            raise KartError(f"{p}: not empty; give a fresh --out (or remove it)")
    result = DemoResult()

    def stage(name: str, command: Any, ok: tuple[int, ...] = (0,)) -> str:
        text, secs = run_command(command, ok=ok, echo=echo)
        result.stages.append((name, secs))
        return text

    def record(name: str, seeds: tuple[int, ...], config: SimRecordConfig) -> None:
        reports = json.loads(stage(name, record_command(rec, seeds, config, c.workers)))
        result.frames += sum(r["frames"] for r in reports)
        mean = sum(r["score"] for r in reports) / len(reports)
        echo(
            f"  {len(reports)} sessions, {result.frames} frames so far; driver's mean score {mean:.0f}"
        )

    def train_and_drive(label: str) -> None:
        run, model = out / "runs" / label, out / "models" / label
        stage("shard", shard_command(rec, ds, c.workers))
        stage(f"train ({label})", train_command(c.train_config(ds), run))
        stage("export", export_command(run, model))
        drive_dir = out / "drive" / label
        drive_dir.mkdir(parents=True, exist_ok=True)
        drive = DriveConfig(
            seeds=c.eval_seeds,
            steps=c.eval_steps,
            gif=drive_dir / "run.gif",
            plot=drive_dir / "scores.png",
        )
        stage(f"drive ({label})", drive_command(model, drive, c.policy, drive_dir / "drive.json"))
        rep = json.loads((drive_dir / "drive.json").read_text())
        result.rounds.append(
            {
                "round": label,
                "frames": result.frames,
                "model_mean": rep["model_mean"],
                "expert_mean": rep["expert_mean"],
                "ratio": rep["ratio"] if rep["ratio"] is not None else float("nan"),
                "model": str(model),
                "seeds": rep["seeds"],
            }
        )
        result.gif, result.plot = rep["gif"], rep["plot"]
        echo(
            f"  {label}: model {rep['model_mean']:.0f} / expert {rep['expert_mean']:.0f}"
            f" = {result.rounds[-1]['ratio']:.3f} on unseen seeds {list(c.eval_seeds)}"
        )

    record("record expert", c.expert_seeds, c.record)
    record("record perturbed", c.perturbed_seeds, dataclasses.replace(c.record, perturb=c.perturb))
    stage("validate", validate_command(rec), ok=(0, 1))
    train_and_drive("offline")
    for i, round_seeds in enumerate(c.dagger_seeds, start=1):
        prev = out / "models" / result.rounds[-1]["round"]
        learner = dataclasses.replace(c.record, policy=str(prev))
        record(f"record learner-driven {i}", round_seeds, learner)
        train_and_drive(f"dagger-{i}")
    (out / "summary.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return result
