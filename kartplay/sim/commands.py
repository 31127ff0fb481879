"""The command lines the demo and the ablation run, built from config objects.

Each stage runs as its own process, as when a user types it: every training
run starts with fresh TensorFlow state, memory and thread pools, and the line
printed before it runs is exactly what ran. The configs are the truth; this
module is the one place that turns them into flags, and it refuses a config
with a value that no flag can say, so nothing is dropped on the way.
``tests/kartplay/sim/test_commands.py`` parses every line back through the
real command-line tools and checks that it gives the same config.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kartdata import clikit
from kartdata.errors import KartError
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.models import ModelName
from kartplay.policy import PolicyConfig
from kartplay.sim.collect import SimRecordConfig
from kartplay.sim.drive import DriveConfig

#: The simulator's observation, trained on at its own size.
SIM_SIZE = 96
#: What a simulator model predicts: steer, gas, brake.
SIM_TARGETS: tuple[str, ...] = ("x", "a", "b")


@dataclass(frozen=True, slots=True)
class Command:
    """One run of a kartkit tool: ``kartdata``, ``kartmodel`` or ``kartplay``."""

    tool: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.tool} {shlex.join(self.args)}"


def sim_train_config(
    dataset: str | Path,
    data: DataOptions,
    *,
    model: ModelName = "sepnet",
    epochs: int = 4,
    batch_size: int = 64,
    seed: int | None = None,
) -> TrainConfig:
    """The simulator recipe: a small CNN on the 96x96 observation predicting
    steer, gas and brake with MSE, the checkpoint picked by validation loss."""
    return TrainConfig(
        str(dataset),
        model=model,
        loss="mse",
        height=SIM_SIZE,
        width=SIM_SIZE,
        epochs=epochs,
        batch_size=batch_size,
        monitor="val_loss",
        seed=seed,
        log_every=100,
        data=data,
    )


# -- configs → command lines ----------------------------------------------------


def _flags(
    config: Any, flags: Mapping[str, str | Callable[[Any], list[str]]], what: str
) -> list[str]:
    """The flags for each field of ``config`` that differs from its default:
    ``flags`` maps a field to its flag, or to a function giving the arguments.
    A changed field without a flag is an error, never silently dropped."""
    out: list[str] = []
    for f in dataclasses.fields(config):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue  # a required field: the caller puts it where the tool wants it
        value = getattr(config, f.name)
        default = clikit.default(type(config), f.name)
        if value == default:
            continue
        flag = flags.get(f.name)
        if flag is None:
            raise KartError(f"`{what}` has no flag for {type(config).__name__}.{f.name}={value!r}")
        out += flag(value) if callable(flag) else [flag, _text(value)]
    return out


def _text(value: Any) -> str:
    return str(value)


def _seeds(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds))


def _switch(on: str, off: str) -> Callable[[bool], list[str]]:
    return lambda v: [on if v else off]


def record_command(
    out: Path, seeds: Sequence[int], config: SimRecordConfig, workers: int = 0
) -> Command:
    """``kartplay sim record`` of ``config`` on ``seeds``, the report as JSON."""
    what = "kartplay sim record"
    args = ["sim", "record", "--out", str(out), "--seeds", _seeds(seeds)]
    args += ["--steps", str(config.steps)]
    args += _flags(
        dataclasses.replace(config, steps=SimRecordConfig().steps),
        {
            "every": "--every",
            "policy": "--policy",
            "seed": "--schedule-seed",
            "perturb": lambda p: _flags(
                p,
                {
                    "rate": "--perturb",
                    "push_s": "--push-s",
                    "strength": "--strength",
                    "settle_s": "--settle-s",
                    "overspeed": "--overspeed",
                    "overspeed_s": "--overspeed-s",
                },
                what,
            ),
        },
        what,
    )
    if workers:
        args += ["--workers", str(workers)]
    return Command("kartplay", (*args, "--json"))


def train_command(config: TrainConfig, out: Path) -> Command:
    """``kartmodel train`` of ``config`` into the run directory ``out``."""
    what = "kartmodel train"
    if config.data.targets is None:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, targets=config.target_config)
        )
    args = ["train", config.dataset, "--out", str(out)]
    args += _flags(
        config,
        {
            "model": "--model",
            "loss": "--loss",
            "height": "--height",
            "width": "--width",
            "crop_top": "--crop-top",
            "crop_bottom": "--crop-bottom",
            "epochs": "--epochs",
            "batch_size": "--batch-size",
            "steps_per_epoch": "--steps-per-epoch",
            "val_steps": "--val-steps",
            "learning_rate": "--lr",
            "schedule": "--schedule",
            "warmup_epochs": "--warmup-epochs",
            "monitor": "--monitor",
            "seed": "--seed",
            "deterministic": _switch("--deterministic", "--no-deterministic"),
            "mixed_precision": "--mixed-precision",
            "log_every": "--log-every",
            "data": lambda d: _flags(
                d,
                {
                    "targets": lambda t: _flags(
                        t,
                        {
                            "kind": lambda k: [
                                "--targets",
                                k if isinstance(k, str) else ",".join(k),
                            ],
                            "smoothing": "--smooth",
                            "lookahead": "--lookahead",
                        },
                        what,
                    ),
                    "splits": lambda s: _flags(
                        s,
                        {
                            "val_fraction": "--val-fraction",
                            "val_sessions": lambda v: ["--val-sessions", ",".join(v)],
                            "session_tags": lambda v: ["--session-tags", ",".join(v)],
                        },
                        what,
                    ),
                    "balance": "--balance",
                    "recovery_weight": "--recovery-weight",
                    "augment": _switch("--augment", "--no-augment"),
                },
                what,
            ),
        },
        what,
    )
    return Command("kartmodel", tuple(args))


def export_command(run: Path, model: Path) -> Command:
    """``kartmodel export`` of a run's last epoch as a Keras model in ``model``."""
    args = ("export", str(run), "--checkpoint", "last", "--format", "keras", "--out", str(model))
    return Command("kartmodel", args)


def drive_command(
    model: Path, config: DriveConfig, policy: PolicyConfig, report: Path | None = None
) -> Command:
    """``kartplay sim drive`` of ``model`` with ``policy`` on ``config``'s seeds."""
    what = "kartplay sim drive"
    if policy.seed is None:
        raise KartError(f"`{what}` always seeds the policy: give PolicyConfig a seed")
    args = ["sim", "drive", str(model), "--seeds", _seeds(config.seeds)]
    args += _flags(
        dataclasses.replace(config, seeds=DriveConfig().seeds),
        {
            "steps": "--steps",
            "gif": "--gif",
            "plot": "--plot",
            "with_expert": _switch("--expert", "--no-expert"),
        },
        what,
    )
    args += _flags(
        dataclasses.replace(policy, seed=None),
        {
            "selection": "--selection",
            "smoothing": "--smoothing",
            "deadzone": "--deadzone",
            "axis_scale": "--axis-scale",
            "hold": lambda h: ["--hold", ",".join(h)],
        },
        what,
    )
    args += ["--seed", str(policy.seed)]
    if report is not None:
        args += ["--report", str(report)]
    return Command("kartplay", tuple(args))


def shard_command(recordings: Path, dataset: Path, workers: int = 0) -> Command:
    """``kartdata shard`` of the simulator's recordings at their own size,
    keeping what validation flags (simulator frames are exact)."""
    args = ["shard", str(recordings), "--out", str(dataset), "--keep-flagged"]
    args += ["--max-width", str(SIM_SIZE), "--max-height", str(SIM_SIZE), "--no-progress"]
    if workers:
        args += ["--workers", str(workers)]
    return Command("kartdata", tuple(args))


def validate_command(recordings: Path) -> Command:
    return Command("kartdata", ("validate", str(recordings)))


# -- running them -----------------------------------------------------------------


def run_command(
    command: Command, ok: tuple[int, ...] = (0,), echo: Callable[[str], Any] = print
) -> tuple[str, float]:
    """Run ``command`` as a subprocess, echoing it first; its stdout and how
    long it took. A failure is one KartError line (the tool's own error is
    already on stderr)."""
    echo(f"$ {command}")
    t = time.monotonic()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(
        [sys.executable, "-m", f"{command.tool}.cli", *command.args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    if p.returncode not in ok:
        raise KartError(f"`{command}` exited {p.returncode}")
    return p.stdout, time.monotonic() - t
