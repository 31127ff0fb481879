"""TrainConfig: nested loader configs, checked once, saved and read back."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kartdata.augment import AugmentConfig
from kartdata.errors import KartError
from kartdata.split import SplitConfig
from kartdata.targets import CLASS3, TargetConfig
from kartmodel.config import DataOptions, TrainConfig


def test_run_json_round_trip_keeps_the_nested_configs() -> None:
    config = TrainConfig(
        "ds",
        model="sepnet",
        loss="mse",
        data=DataOptions(
            targets=TargetConfig(("x", "a", "b"), smoothing=3, lookahead=1),
            splits=SplitConfig(val_fraction=0.2, val_sessions=("s1", "s2")),
            balance="uniform",
            recovery_weight=2.0,
            augment=False,
        ),
    )
    again = TrainConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config
    assert again.layout.names == ("x", "a", "b") and again.layout.source == "x,a,b"
    turned = replace(
        config,
        data=replace(config.data, augment=AugmentConfig(turn=0.1, turn_keep=((0, 0, 0.5, 1),))),
    )
    assert TrainConfig.from_json(json.loads(json.dumps(turned.to_json()))) == turned


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--turn", "0.1", "--turn-keep", "0,0,1"],
            "box '0,0,1' is not four numbers top,left,bottom,right",
        ),
        (["--turn", "1.5"], "augment turn 1.5 is not in [0, 1)"),
        (["--turn", "0.1", "--turn-steer", "3"], "augment turn_steer 3.0 is not in [0, 2]"),
        (["--turn", "0.1", "--no-augment"], "--turn is an augmentation: it needs --augment"),
        (
            ["--turn-keep", "0,0,0.5,1"],
            "--turn-steer and --turn-keep shape the turn: they need --turn",
        ),
        (["--turn-steer", "0.5"], "--turn-steer and --turn-keep shape the turn: they need --turn"),
    ],
)
def test_bad_turn_flags_are_one_line_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kartmodel.cli", "train", str(tmp_path), "--out",
         str(tmp_path / "run"), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert not (tmp_path / "run").exists()


def test_a_run_json_from_before_the_nesting_still_opens() -> None:
    old = {
        "dataset": "ds",
        "model": "categorical",
        "targets": None,
        "epochs": 3,
        "data": {
            "balance": "uniform",
            "recovery_weight": 2.0,
            "smooth": 3,
            "lookahead": 0,
            "augment": True,
            "val_fraction": 0.1,
            "val_sessions": ["s3"],
            "shuffle_buffer": 2048,
        },
    }
    config = TrainConfig.from_json(old)
    assert config.data == DataOptions(
        targets=TargetConfig(CLASS3, smoothing=3),
        splits=SplitConfig(val_sessions=("s3",)),
        balance="uniform",
        recovery_weight=2.0,
    )
    assert config.layout.kind == CLASS3 and config.loss_name == "crossentropy"
    plain = TrainConfig.from_json({**old, "model": "pilotnet", "targets": "x,a", "data": {}})
    assert plain.target_config == TargetConfig(("x", "a"))
    assert TrainConfig.from_json({"dataset": "ds", "data": {}}).data == DataOptions()


def test_the_model_default_targets_and_loss() -> None:
    assert TrainConfig("ds", model="categorical").target_config == TargetConfig(CLASS3)
    assert TrainConfig("ds").layout.names == ("x", "y", "a", "b", "r")
    assert TrainConfig("ds").loss_name == "euclidean"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"schedule": "linear"}, "schedule 'linear'"),
        ({"mixed_precision": "maybe"}, "mixed precision 'maybe'"),
        ({"epochs": 0}, "epochs 0"),
        ({"steps_per_epoch": 0}, "steps_per_epoch 0"),
        ({"loss": "mse", "model": "categorical"}, "class3 targets need the crossentropy"),
        ({"loss": "crossentropy"}, "crossentropy needs class3"),
        ({"height": -5}, "model input"),
        (
            {"data": DataOptions(targets=TargetConfig(CLASS3, class_format="index"))},
            "one-hot",
        ),
    ],
)
def test_bad_options_fail_when_the_config_is_made(options: dict, message: str) -> None:
    with pytest.raises(KartError, match=message):
        TrainConfig("ds", **options)
