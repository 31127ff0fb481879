"""The ablation on tiny settings: every variant trained once per training seed,
ranked by the mean, with the expert driven only once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kartdata.manifest import Encoding
from kartdata.shard import ShardConfig, shard
from kartdata.split import SplitConfig
from kartplay.sim.ablation import AblationConfig, run_ablation, table
from kartplay.sim.collect import PerturbConfig, SimRecordConfig, collect
from kartplay.sim.drive import drive_expert

pytestmark = pytest.mark.slow


def test_ablation_trains_each_seed_and_drives_the_expert_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    rec, ds, out = tmp_path / "rec", tmp_path / "ds", tmp_path / "ablation"
    collect(rec, [1], SimRecordConfig(steps=80), workers=1)
    collect(rec, [2], SimRecordConfig(steps=80, perturb=PerturbConfig(rate=1.5, overspeed=0.5)), 1)
    shard([rec], ds, ShardConfig(Encoding(max_width=96, max_height=96), workers=0, validate=False))

    seeds, steps = (21,), 20
    val = SplitConfig(val_sessions=("perturbed-seed00002",))
    c = AblationConfig(
        str(ds), out, seeds, steps, epochs=1, batch_size=32, train_seeds=(1, 2),
        splits=val, variants=("none",),
    )  # fmt: skip
    (row,) = run_ablation(c, echo=lambda _line: None)

    reports = [json.loads((out / "reports" / f"none-seed{s}.json").read_text()) for s in (1, 2)]
    (expert,) = drive_expert(seeds, steps)
    assert reports[0]["expert_mean"] == pytest.approx(expert.score, abs=0.01)
    assert reports[1]["expert_mean"] is None  # not driven again
    assert row["expert_mean"] == reports[0]["expert_mean"]
    ratios = [r["model_mean"] / row["expert_mean"] for r in reports]
    assert row["ratios"] == {"1": pytest.approx(ratios[0]), "2": pytest.approx(ratios[1])}
    assert row["ratio"] == pytest.approx(sum(ratios) / 2)
    assert row["ratio_min"] == pytest.approx(min(ratios))
    for s in (1, 2):
        assert (out / "models" / "none" / f"seed{s}" / "kartkit.json").is_file()
    assert json.loads((out / "ablation.json").read_text()) == [row]
    assert table([row]).splitlines()[1].startswith("none")
