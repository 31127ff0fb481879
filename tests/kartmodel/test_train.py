"""A real short training run on a generated dataset, then evaluate and export it."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_datasets import frame, key_of

from kartdata.errors import KartError, ModelError
from kartdata.preprocess import preprocess
from kartdata.split import SplitConfig
from kartmodel.artifact import ARTIFACT_FILE, export, load_artifact
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.evaluation import evaluate, format_table
from kartmodel.run import Run
from kartmodel.trainer import TrainResult, train

EPOCHS, BATCH, LR = 4, 32, 3e-3


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    config = TrainConfig(
        str(dataset),
        model="categorical",
        height=36,
        width=64,
        epochs=EPOCHS,
        batch_size=BATCH,
        learning_rate=LR,
        seed=1,
        data=DataOptions(splits=SplitConfig(val_sessions=("s3",)), augment=False),
    )
    lines: list[str] = []
    result = train(config, tmp_path_factory.mktemp("runs") / "cat", progress=lines.append)
    assert any("input wait" in line and "ex/s" in line for line in lines)
    return result


def test_training_lowers_val_loss_and_learns_the_steering_rule(trained: TrainResult) -> None:
    h = trained.history
    assert [r["epoch"] for r in h] == list(range(1, EPOCHS + 1))
    assert min(r["val_loss"] for r in h[1:]) < h[0]["val_loss"]
    best = trained.best
    assert best["val_balanced_accuracy"] >= 0.8, h
    # on frames it never saw, the road bending left/right decides the class
    art = load_artifact(export(trained.run, "keras"))
    probs = art.predict(np.stack([frame(s, t=7) for s in (-0.8, -0.6, 0.0, 0.6, 0.8)]))
    assert probs.argmax(axis=1).tolist() == [0, 0, 1, 2, 2]


def test_learning_rate_schedule_reaches_the_optimizer(trained: TrainResult) -> None:
    h = trained.history
    steps = h[0]["step"]
    assert [r["step"] for r in h] == [steps * (i + 1) for i in range(EPOCHS)]
    lrs = [r["lr"] for r in h]
    assert lrs[0] == pytest.approx(LR)
    assert all(b < a for a, b in itertools.pairwise(lrs))
    expect = keras.optimizers.schedules.CosineDecay(LR, EPOCHS * steps, alpha=0.01)
    for r in h:
        assert r["lr"] == pytest.approx(float(expect(r["step"] - steps)), rel=1e-5)
        assert r["lr_end"] == pytest.approx(float(expect(r["step"])), rel=1e-5)


def test_run_directory_holds_logs_checkpoints_and_best(trained: TrainResult) -> None:
    run = trained.run
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == EPOCHS
    for key in ("val_left_recall", "val_right_precision", "input_wait_share", "examples_per_s"):
        assert key in rows[0]
    assert 0 <= float(rows[-1]["input_wait_share"]) < 1
    assert sum(int(r["best"]) for r in rows) >= 1
    assert list((run / "tb" / "train").glob("events.out.tfevents.*"))
    assert list((run / "tb" / "val").glob("events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(str(run / "ckpt")).endswith(f"ckpt-{EPOCHS}")
    _best_model, row = Run.open(run).load_model("best")
    assert row["epoch"] == trained.best["epoch"]
    with pytest.raises(KartError, match="already holds a training run"):
        train(Run.open(run).config, run, progress=None)


def test_export_formats_agree(trained: TrainResult, tmp_path: Path) -> None:
    frames = np.stack([frame(s, t=3) for s in (-0.7, -0.2, 0.0, 0.3, 0.9)])
    preds = {}
    for fmt in ("keras", "savedmodel", "tflite"):
        art = load_artifact(export(trained.run, fmt, tmp_path / fmt))
        meta = json.loads((tmp_path / fmt / ARTIFACT_FILE).read_text())
        assert meta["input"] == {
            "height": 36,
            "width": 64,
            "crop_top": 0.0,
            "crop_bottom": 0.0,
            "version": 1,
        }
        assert meta["targets"]["names"] == ["left", "straight", "right"]
        assert art.kind == "class3" and art.spec.shape == (36, 64, 3)
        preds[fmt] = art.predict(frames)
        # uint8 frames are preprocessed by the artifact exactly as training did
        floats = np.asarray(preprocess(frames, art.spec))
        np.testing.assert_allclose(art.predict(floats), preds[fmt], atol=1e-6)
        np.testing.assert_allclose(art.predict(frames[0]), preds[fmt][:1], atol=1e-5)
    np.testing.assert_allclose(preds["savedmodel"], preds["keras"], atol=1e-5)
    np.testing.assert_allclose(preds["tflite"], preds["keras"], atol=1e-4)
    with pytest.raises(ModelError, match="preprocessed"):
        load_artifact(tmp_path / "keras").predict(np.zeros((1, 10, 10, 3), np.float32))


def test_evaluate_per_session_and_overall(trained: TrainResult, dataset: Path) -> None:
    keys = {name: key_of(dataset, name) for name in ("s0", "s1", "s2", "s3")}
    ev = evaluate(trained.run, str(dataset), split="all")
    # sessions are identified by key and carry their recording's name
    assert sorted(ev.sessions) == sorted(keys.values())
    assert {m["name"]: k for k, m in ev.sessions.items()} == keys
    assert ev.overall["examples"] == 480
    assert sum(s["examples"] for s in ev.sessions.values()) == 480
    counts = np.array(ev.overall["confusion"]["counts"])
    assert counts.sum() == 480
    saved = json.loads((trained.run / "eval" / "ds-all-best.json").read_text())
    s3 = saved["sessions"][keys["s3"]]
    assert s3["name"] == "s3"
    assert s3["balanced_accuracy"] == ev.sessions[keys["s3"]]["balanced_accuracy"]
    table = format_table(ev).splitlines()
    assert table[0].split()[:2] == ["session", "name"]
    assert {tuple(line.split()[:2]) for line in table[1:5]} == {(k, n) for n, k in keys.items()}
    # "s3" given to training as a recording name held out exactly that session
    val = evaluate(trained.run, str(dataset), split="val", save=False)
    assert list(val.sessions) == [keys["s3"]]
    assert val.overall["loss"] == pytest.approx(trained.best["val_loss"], rel=1e-4)


def test_cli_refuses_other_preprocess_version_in_one_line(
    trained: TrainResult, tmp_path: Path
) -> None:
    out = export(trained.run, "keras", tmp_path / "art")
    meta = json.loads((out / ARTIFACT_FILE).read_text())
    meta["input"]["version"] = 99
    (out / ARTIFACT_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="preprocessing version 99"):
        load_artifact(out)
    proc = subprocess.run(
        [sys.executable, "-m", "kartmodel.cli", "evaluate", str(tmp_path / "nope"), "ds"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # (TensorFlow's own start-up lines may come first)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nope' / 'run.json'}: no run.json; not a kartmodel run directory"
    )
