"""Kill a real training process after an epoch's checkpoint, then resume it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from kartmodel.run import Run

EPOCHS = 4


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kartmodel.cli", *args]


def test_kill_after_a_checkpoint_then_resume(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_args = [
        "train", str(dataset), "--out", str(run), "--model", "pilotnet", "--epochs", str(EPOCHS),
        "--batch-size", "16", "--steps-per-epoch", "4", "--val-steps", "2", "--val-sessions", "s3", "--no-augment", "--seed", "3",
        "--lr", "1e-3", "--log-every", "1000",
    ]  # fmt: skip
    proc = subprocess.Popen(_cli(*train_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = run / "ckpt" / "checkpoint"
    deadline = time.monotonic() + 240
    try:
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling a condition with a deadline
        assert state.exists(), proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = len(list((run / "ckpt").glob("ckpt-*.index")))
    assert 1 <= done < EPOCHS

    resumed = subprocess.run(
        _cli("train", str(dataset), "--out", str(run), "--resume"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first = [line for line in resumed.stderr.splitlines() if line.startswith("resuming")]
    assert first and f"after epoch {done} " in first[0], resumed.stderr[-2000:]

    h = Run.open(run).history()
    assert [r["epoch"] for r in h] == list(range(1, EPOCHS + 1))
    steps = h[0]["step"]
    # the optimizer's step counter went on from where the checkpoint left it
    assert [r["step"] for r in h] == [steps * (i + 1) for i in range(EPOCHS)]
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, EPOCHS * steps, alpha=0.01)
    for r in h:
        assert r["lr"] == pytest.approx(float(schedule(r["step"] - steps)), rel=1e-5)
    assert "2 epoch(s)" not in resumed.stdout and f"{EPOCHS} epoch(s)" in resumed.stdout
