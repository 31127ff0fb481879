"""The whole chain on tiny settings, through the command-line tools as a user
runs them: record → validate → shard → train → export → drive → learner-driven
record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kartdata.schema import RECOVERY_TAG
from kartdata.sources.native import NativeSession
from kartplay.sim.drive import drive_expert

pytestmark = pytest.mark.slow


def tool(name: str, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run(
        [sys.executable, "-m", f"{name}.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode in ok, f"{name} {' '.join(args)} exited {p.returncode}:\n{p.stderr[-2000:]}"
    return p


def test_record_shard_train_drive_and_learner_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The verdict store goes under the test's directory, not the user's cache.
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "cache"))
    rec, ds, run = tmp_path / "rec", tmp_path / "ds", tmp_path / "run"
    steps = 120
    out = tool("kartplay", "sim", "record", "--out", str(rec), "--seeds", "1-2",
               "--steps", str(steps), "--workers", "1", "--json")  # fmt: skip
    clean = json.loads(out.stdout)
    out = tool("kartplay", "sim", "record", "--out", str(rec), "--seeds", "3",
               "--steps", str(steps), "--perturb", "1.5", "--workers", "1", "--json")  # fmt: skip
    (perturbed,) = json.loads(out.stdout)
    assert [r["frames"] for r in clean] == [steps, steps]
    assert perturbed["recovery_frames"] > 0 and perturbed["driver"] == "perturbed"

    report = json.loads(tool("kartdata", "validate", str(rec), "--json", ok=(0, 1)).stdout)
    assert sorted(s["frames"] for s in report["sessions"]) == [steps] * 3
    assert not any(s["unusable"] for s in report["sessions"])

    tool("kartdata", "shard", str(rec), "--out", str(ds), "--keep-flagged", "--workers", "0",
         "--max-width", "96", "--max-height", "96")  # fmt: skip
    info = json.loads(tool("kartdata", "info", str(ds), "--json").stdout)
    assert info["frames"] == 3 * steps
    assert sorted(s["track"] for s in info["sessions"]) == [f"carracing-{i}" for i in (1, 2, 3)]
    recovery = sum(n for k, n in info["strata"].items() if k.endswith("-recovery"))
    assert recovery == perturbed["recovery_frames"]

    val = next(s for s in info["sessions"] if s["track"] == "carracing-3")
    tool("kartmodel", "train", str(ds), "--out", str(run), "--model", "sepnet",
         "--targets", "x,a,b", "--loss", "mse", "--height", "96", "--width", "96",
         "--epochs", "1", "--batch-size", "32", "--val-sessions", val["key"],
         "--monitor", "val_loss", "--seed", "1")  # fmt: skip
    tool("kartmodel", "export", str(run), "--format", "keras", "--out", str(tmp_path / "model"))
    art = json.loads((tmp_path / "model" / "kartkit.json").read_text())
    assert art["targets"]["names"] == ["x", "a", "b"]
    assert (art["input"]["height"], art["input"]["width"]) == (96, 96)

    gif, plot = tmp_path / "out" / "run.gif", tmp_path / "out" / "plot.png"
    seeds, drive_steps = [21, 22], 100
    out = tool("kartplay", "sim", "drive", str(tmp_path / "model"), "--seeds", "21,22",
               "--steps", str(drive_steps), "--gif", str(gif), "--plot", str(plot),
               "--json")  # fmt: skip
    result = json.loads(out.stdout)
    assert [s["seed"] for s in result["seeds"]] == seeds
    assert all(s["steps"] == drive_steps for s in result["seeds"])
    # The expert's reference is a real, reproducible drive of the same seeds.
    expert = drive_expert(seeds, drive_steps)
    assert [s["expert_score"] for s in result["seeds"]] == [round(p.score, 2) for p in expert]
    model_mean = sum(s["score"] for s in result["seeds"]) / 2
    assert result["model_mean"] == pytest.approx(model_mean, abs=0.01)
    assert result["ratio"] == pytest.approx(result["model_mean"] / result["expert_mean"], abs=1e-3)
    from PIL import Image

    with Image.open(gif) as im:
        assert im.format == "GIF" and im.size == (300, 200) and im.n_frames > 1
        # Identical neighbours are merged into one longer frame: the durations
        # still add up to the run (every 2nd step at 50 steps/s).
        total = 0
        for i in range(im.n_frames):
            im.seek(i)
            total += im.info["duration"]
        assert total == drive_steps // 2 * 40
    with Image.open(plot) as im:
        assert im.format == "PNG"

    # Learner-driven: the model drives, the expert labels, every frame recovery.
    tool("kartplay", "sim", "record", "--out", str(rec), "--seeds", "4", "--steps", "60",
         "--policy", str(tmp_path / "model"), "--workers", "1")  # fmt: skip
    s = NativeSession(rec / "learner-seed00004")
    frames = list(s.frames())
    assert len(frames) == 60 and all(RECOVERY_TAG in f.tags for f in frames)
    assert s.meta.player == "learner" and s.meta.extra["policy"] == str(tmp_path / "model")
    # Appending the learner's session to the dataset makes a second generation.
    tool("kartdata", "shard", str(rec), "--out", str(ds), "--keep-flagged", "--workers", "0")
    info = json.loads(tool("kartdata", "info", str(ds), "--json").stdout)
    assert len(info["sessions"]) == 4 and info["frames"] == 3 * steps + 60
    assert info["generation"] == 2
