"""The demo's and the ablation's command lines, parsed back by the real tools:
each must give exactly the config it was built from (a renamed flag, or a
field that no flag carries, fails here, not an hour into the demo)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import kartdata.cli
import kartmodel.cli
import kartplay.cli
from kartdata.errors import KartError
from kartdata.split import SplitConfig
from kartmodel.config import TrainConfig
from kartplay.policy import PolicyConfig
from kartplay.sim.ablation import FEATURES, variant_configs
from kartplay.sim.collect import PerturbConfig, SimRecordConfig
from kartplay.sim.commands import (
    Command,
    drive_command,
    export_command,
    record_command,
    shard_command,
    sim_train_config,
    train_command,
    validate_command,
)
from kartplay.sim.demo import DemoConfig
from kartplay.sim.drive import DriveConfig

APPS = {"kartdata": kartdata.cli.app, "kartmodel": kartmodel.cli.app, "kartplay": kartplay.cli.app}


def invoke(command: Command) -> None:
    result = CliRunner().invoke(APPS[command.tool], list(command.args), catch_exceptions=False)
    assert result.exit_code == 0, (str(command), result.output)


def parses(command: Command) -> None:
    """The tool's own parser knows every flag (``--help`` then stops it before
    anything runs; an unknown flag is refused while parsing, before that)."""
    result = CliRunner().invoke(APPS[command.tool], [*command.args, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, (str(command), result.output)


def exported_with(command: Command, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    import kartmodel.artifact

    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(kartmodel.artifact, "export", lambda *args: seen.append(args) or "x")
    invoke(command)
    (args,) = seen
    return args


def trained_with(command: Command, monkeypatch: pytest.MonkeyPatch) -> TrainConfig:
    import kartmodel.trainer

    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, out: Path, **_: Any) -> Any:
        seen.append(config)
        return SimpleNamespace(best={}, epochs=0)

    monkeypatch.setattr(kartmodel.trainer, "train", fake_train)
    invoke(command)
    (config,) = seen
    return config


def recorded_with(command: Command, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    import kartplay.sim.collect

    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(kartplay.sim.collect, "collect", lambda *args: seen.append(args) or [])
    invoke(command)
    (args,) = seen
    return args


def driven_with(command: Command, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    import kartplay.policy
    import kartplay.sim.drive

    policies: list[PolicyConfig] = []
    drives: list[DriveConfig] = []
    reports: list[Path] = []
    monkeypatch.setattr(kartplay.policy, "load", lambda path, c: policies.append(c) or path)
    report = SimpleNamespace(to_json=dict, table=str, gif=None, plot=None)
    monkeypatch.setattr(kartplay.sim.drive, "drive", lambda p, c: drives.append(c) or report)
    monkeypatch.setattr(kartplay.sim.drive, "save_report", lambda r, path: reports.append(path))
    invoke(command)
    (policy,), (drive,) = policies, drives
    return policy, drive, reports


def test_the_demo_commands_give_back_the_demo_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = DemoConfig(out=tmp_path, workers=2)
    rec, ds = tmp_path / "recordings", tmp_path / "dataset"

    perturbed = dataclasses.replace(c.record, perturb=c.perturb)
    learner = dataclasses.replace(c.record, policy=str(tmp_path / "models" / "offline"))
    for config in (c.record, perturbed, learner):
        out, seeds, got, workers = recorded_with(
            record_command(rec, c.expert_seeds, config, c.workers), monkeypatch
        )
        assert (out, seeds, got, workers) == (rec, c.expert_seeds, config, 2)

    train = c.train_config(ds)
    assert trained_with(train_command(train, tmp_path / "run"), monkeypatch) == train

    drive = DriveConfig(
        seeds=c.eval_seeds, steps=c.eval_steps, gif=tmp_path / "g.gif", plot=tmp_path / "p.png"
    )
    policy, got, reports = driven_with(
        drive_command(tmp_path / "model", drive, c.policy, tmp_path / "drive.json"), monkeypatch
    )
    assert (policy, got, reports) == (c.policy, drive, [tmp_path / "drive.json"])

    export = export_command(tmp_path / "run", tmp_path / "model")
    assert exported_with(export, monkeypatch) == (
        tmp_path / "run",
        "keras",
        tmp_path / "model",
        "last",
    )
    # kartdata's tools: their parsers know the flags
    parses(shard_command(rec, ds, c.workers))
    parses(validate_command(rec))
    with pytest.raises(AssertionError):
        parses(Command("kartdata", ("shard", str(rec), "--no-such-flag")))


@pytest.mark.parametrize("variant", ["all", "none", *(f"no-{f}" for f in FEATURES)])
def test_every_ablation_variant_round_trips(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, policy = variant_configs(variant, SplitConfig(val_sessions=("a", "b")))
    train = sim_train_config("ds", data, epochs=1, batch_size=32, seed=2)
    assert trained_with(train_command(train, tmp_path / "run"), monkeypatch) == train
    drive = DriveConfig(seeds=(21,), steps=20, with_expert=False)
    got_policy, got_drive, _ = driven_with(
        drive_command(tmp_path / "m", drive, policy, tmp_path / "r.json"), monkeypatch
    )
    assert (got_policy, got_drive) == (policy, drive)


def test_every_train_flag_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kartdata.targets import TargetConfig
    from kartmodel.config import DataOptions

    config = TrainConfig(
        "ds",
        model="pilotnet",
        loss="mse",
        height=40,
        width=60,
        crop_top=0.1,
        crop_bottom=0.2,
        epochs=3,
        batch_size=7,
        steps_per_epoch=5,
        val_steps=2,
        learning_rate=0.01,
        schedule="constant",
        warmup_epochs=0.5,
        monitor="val_steer_mae",
        seed=9,
        deterministic=True,
        mixed_precision="off",
        log_every=3,
        data=DataOptions(
            targets=TargetConfig(("x", "a"), smoothing=5, lookahead=2),
            splits=SplitConfig(val_fraction=0.3, val_sessions=("s1", "s2")),
            balance="uniform",
            recovery_weight=0.5,
            augment=False,
        ),
    )
    assert trained_with(train_command(config, tmp_path / "run"), monkeypatch) == config
    record = SimRecordConfig(
        steps=50,
        every=3,
        perturb=PerturbConfig(0.7, 0.2, 0.4, 0.5, 0.3, 1.0),
        policy="m",
        seed=4,
    )
    assert recorded_with(record_command(tmp_path, (1,), record), monkeypatch)[2] == record
    policy = PolicyConfig(axis_scale=2.0, deadzone=0.1, selection="argmax", hold=("a",), seed=3)
    assert driven_with(drive_command(tmp_path, DriveConfig(), policy), monkeypatch)[0] == policy


def test_a_value_no_flag_carries_is_refused() -> None:
    with pytest.raises(KartError, match=r"no flag for TrainConfig\.decay_rate"):
        train_command(TrainConfig("ds", decay_rate=0.9), Path("run"))
    with pytest.raises(KartError, match=r"no flag for SplitConfig\.salt"):
        data = variant_configs("all", SplitConfig(salt="x"))[0]
        train_command(sim_train_config("ds", data), Path("run"))
    with pytest.raises(KartError, match=r"no flag for PolicyConfig\.button_threshold"):
        drive_command(Path("m"), DriveConfig(), PolicyConfig(button_threshold=0.2, seed=0))
    with pytest.raises(KartError, match="seeds the policy"):
        drive_command(Path("m"), DriveConfig(), PolicyConfig())
