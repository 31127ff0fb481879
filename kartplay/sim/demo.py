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

Each stage is the command-line tool run as a subprocess (printed before it
runs), so the demo is also a worked example of using them by hand.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kartdata.errors import KartError


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
    steps: int = 1000
    eval_steps: int = 1000
    every: int = 2
    #: Mistakes per second in the perturbed recordings, and the share of them
    #: that are overspeeds (see kartplay.sim.collect).
    perturb: float = 0.5
    overspeed: float = 0.5
    model: str = "sepnet"
    epochs: int = 4
    batch_size: int = 64
    #: Loader and training options passed to ``kartmodel train``.
    train_args: tuple[str, ...] = (
        "--recovery-weight",
        "2",
        "--smooth",
        "3",
        "--no-augment",
    )
    #: Options passed to ``kartplay sim drive`` (the play-side policy).
    drive_args: tuple[str, ...] = ("--smoothing", "0.3")
    workers: int = 0
    seed: int = 1


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


def run_tool(
    tool: str, args: tuple[str, ...] | list[str], ok: tuple[int, ...] = (0,), echo: Any = print
) -> tuple[str, float]:
    """Run ``tool`` (kartdata, kartmodel, kartplay) as a subprocess, echoing the
    command; its stdout and how long it took. A failure is one KartError line
    (the tool's own error is already on stderr)."""
    echo(f"$ {tool} {shlex.join(args)}")
    t = time.monotonic()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(
        [sys.executable, "-m", f"{tool}.cli", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    if p.returncode not in ok:
        raise KartError(f"`{tool} {shlex.join(args)}` exited {p.returncode}")
    return p.stdout, time.monotonic() - t


def run_demo(config: DemoConfig = DemoConfig(), echo: Any = print) -> DemoResult:
    c = config
    out = c.out
    rec, ds = out / "recordings", out / "dataset"
    for p in (rec, ds, out / "runs", out / "models", out / "drive"):
        if p.exists() and any(p.iterdir()):
            raise KartError(f"{p}: not empty; give a fresh --out (or remove it)")
    result = DemoResult()
    seeds = ",".join
    workers = ["--workers", str(c.workers)] if c.workers else []

    def stage(name: str, tool: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        text, secs = run_tool(tool, args, ok=ok, echo=echo)
        result.stages.append((name, secs))
        return text

    def record(name: str, seed_list: tuple[int, ...], *extra: str) -> None:
        text = stage(name, "kartplay", "sim", "record", "--out", str(rec),
                     "--seeds", seeds(map(str, seed_list)), "--steps", str(c.steps),
                     "--every", str(c.every), "--json", *workers, *extra)  # fmt: skip
        reports = json.loads(text)
        result.frames += sum(r["frames"] for r in reports)
        mean = sum(r["score"] for r in reports) / len(reports)
        echo(
            f"  {len(reports)} sessions, {result.frames} frames so far; driver's mean score {mean:.0f}"
        )

    def train_and_drive(label: str) -> None:
        run, model = out / "runs" / label, out / "models" / label
        stage("shard", "kartdata", "shard", str(rec), "--out", str(ds), "--keep-flagged",
              "--max-width", "96", "--max-height", "96", "--no-progress", *workers)  # fmt: skip
        stage(f"train ({label})", "kartmodel", "train", str(ds), "--out", str(run),
              "--model", c.model, "--targets", "x,a,b", "--loss", "mse",
              "--height", "96", "--width", "96", "--epochs", str(c.epochs),
              "--batch-size", str(c.batch_size), "--monitor", "val_loss",
              "--seed", str(c.seed), "--log-every", "100", *c.train_args)  # fmt: skip
        stage("export", "kartmodel", "export", str(run), "--checkpoint", "last",
              "--format", "keras", "--out", str(model))  # fmt: skip
        drive_dir = out / "drive" / label
        drive_dir.mkdir(parents=True, exist_ok=True)
        stage(f"drive ({label})", "kartplay", "sim", "drive", str(model),
              "--seeds", seeds(map(str, c.eval_seeds)), "--steps", str(c.eval_steps),
              "--gif", str(drive_dir / "run.gif"), "--plot", str(drive_dir / "scores.png"),
              "--report", str(drive_dir / "drive.json"), *c.drive_args)  # fmt: skip
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

    record("record expert", c.expert_seeds)
    record(
        "record perturbed",
        c.perturbed_seeds,
        *("--perturb", str(c.perturb), "--overspeed", str(c.overspeed)),
    )
    stage("validate", "kartdata", "validate", str(rec), ok=(0, 1))
    train_and_drive("offline")
    for i, round_seeds in enumerate(c.dagger_seeds, start=1):
        prev = out / "models" / result.rounds[-1]["round"]
        record(f"record learner-driven {i}", round_seeds, "--policy", str(prev))
        train_and_drive(f"dagger-{i}")
    (out / "summary.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return result
