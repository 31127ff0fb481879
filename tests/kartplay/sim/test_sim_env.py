"""The simulator wrapper, the expert and the recorder on short real runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kartdata.errors import KartError
from kartdata.schema import RECOVERY_TAG, Pad
from kartdata.sources.native import NativeSession
from kartplay.sim.collect import PerturbConfig, SimRecordConfig, _PushSchedule, collect
from kartplay.sim.env import DEFAULT_MAPPING, FRAME_SHAPE, Episode, make_env, parse_seeds
from kartplay.sim.expert import Expert


def test_expert_actions_round_trip_through_the_pad_schema() -> None:
    env = make_env()
    ep = Episode(env, 4)
    expert = Expert()
    expert.reset(env)
    for _ in range(120):
        action = expert.act(env)
        pad = DEFAULT_MAPPING.to_pad(action)
        # Through a controls.csv row and back, as the session writer/reader do.
        row = {k: str(v) if k not in ("x", "y") else repr(v) for k, v in pad.to_mapping().items()}
        again = DEFAULT_MAPPING.to_action(Pad.from_mapping(row))
        assert np.array_equal(again, action), (action, again)
        ep.step(action)
    env.close()


def test_mapping_documents_steer_gas_brake() -> None:
    pad = DEFAULT_MAPPING.to_pad([0.25, 1.0, 0.8])
    assert (pad.x, pad.buttons) == (0.25, frozenset({"a", "b"}))
    assert DEFAULT_MAPPING.to_pad([-1.0, 0.0, 0.0]).buttons == frozenset()
    assert list(DEFAULT_MAPPING.to_action(Pad(x=-0.5, buttons=frozenset({"a"})))) == [-0.5, 1, 0]


def test_expert_stays_on_the_road_and_makes_progress() -> None:
    env = make_env()
    ep = Episode(env, 3)
    expert = Expert()
    expert.reset(env)
    for _ in range(400):
        ep.step(expert.act(env))
    p = ep.finish()
    env.close()
    # 400 steps is 8 s: a good driver covers well over a third of a lap.
    assert p.tiles > 0.35 * p.track_tiles
    assert p.off_track_steps == 0
    assert p.score == pytest.approx(1000 / p.track_tiles * p.tiles - 0.1 * 400, abs=1e-6)


def test_push_schedule_replaces_steer_and_tags_the_correction() -> None:
    c = PerturbConfig(rate=5.0, push_s=0.1, strength=0.7, settle_s=0.2)
    push = _PushSchedule(c, np.random.default_rng(0))
    label = np.array([0.1, 1.0, 0.0])
    seen = [push.apply(label) for _ in range(200)]
    assert not any(tagged for _, tagged in seen[:50])  # start-up second is left alone
    pushed = [applied for applied, tagged in seen if applied[0] != 0.1]
    assert pushed and all(abs(a[0]) == 0.7 and a[1] == 1.0 for a in pushed)
    assert sum(tagged for _, tagged in seen) > len(pushed)  # corrections tagged too
    assert label[0] == 0.1  # the label itself is never changed


def test_overspeed_pushes_hold_the_gas_and_release_the_brake() -> None:
    c = PerturbConfig(rate=5.0, push_s=0.1, overspeed=0.5, overspeed_s=0.3, settle_s=0.2)
    push = _PushSchedule(c, np.random.default_rng(0))
    label = np.array([0.1, 0.0, 0.8])  # the expert brakes: an overspeed push overrides it
    seen = [push.apply(label) for _ in range(400)]
    over = [a for a, _ in seen if a[1] == 1.0]
    steer = [a for a, _ in seen if a[0] != 0.1]
    assert over and all(a[0] == 0.1 and a[2] == 0.0 for a in over)
    assert steer and all(a[1] == 0.0 and a[2] == 0.8 for a in steer)
    # Runs of overspeed last overspeed_s (15 steps), steer pushes push_s (5 steps).
    runs, n = [], 0
    for a, _ in seen:
        if a[1] == 1.0:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    assert runs and all(r == 15 for r in runs)
    assert label[1] == 0.0 and label[2] == 0.8


def test_recorded_pads_replay_the_recorded_frames(tmp_path: Path) -> None:
    reports = collect(tmp_path, [5], SimRecordConfig(steps=80), workers=1)
    assert reports[0].frames == 80 and reports[0].recovery_frames == 0
    s = NativeSession(tmp_path / "expert-seed00005")
    assert s.meta.track == "carracing-5" and s.meta.extra["seed"] == 5
    assert (s.meta.width, s.meta.height, s.meta.fps) == (96, 96, 50.0)
    frames = list(s.frames())
    assert [f.index for f in frames] == list(range(80))
    assert [f.t_ns for f in frames] == [i * 20_000_000 for i in range(80)]
    # The same seed driven with the recorded pads shows the recorded frames:
    # the pads hold the exact actions and the frame is the observation.
    env = make_env()
    ep = Episode(env, 5)
    for f in frames:
        assert f.image().shape == FRAME_SHAPE
        assert np.array_equal(f.image(), ep.frame), f"frame {f.index} differs"
        ep.step_pad(f.pad)
    env.close()


def test_perturbed_session_tags_recovery_segments(tmp_path: Path) -> None:
    config = SimRecordConfig(steps=200, perturb=PerturbConfig(rate=1.5), seed=3)
    (r,) = collect(tmp_path, [2], config, workers=1)
    frames = list(NativeSession(r.path).frames())
    tagged = [f.index for f in frames if RECOVERY_TAG in f.tags]
    assert r.recovery_frames == len(tagged) > 0
    assert min(tagged) >= 50
    meta = json.loads((Path(r.path) / "session.json").read_text())
    assert meta["player"] == "perturbed" and meta["extra"]["perturb"]["rate"] == 1.5
    with pytest.raises(KartError, match="already exists"):
        collect(tmp_path, [2], config, workers=1)


def test_perturbed_session_stores_the_experts_pad_not_the_push(tmp_path: Path) -> None:
    """The label is what the expert would do in the frame shown, never the
    injected action: re-drive the session step by step, the schedule's
    mistakes included, and read every stored pad against both."""
    config = SimRecordConfig(steps=150, perturb=PerturbConfig(rate=3.0, overspeed=0.5), seed=3)
    (r,) = collect(tmp_path, [2], config, workers=1)
    frames = list(NativeSession(r.path).frames())
    assert len(frames) == 150
    env = make_env()
    ep = Episode(env, 2)
    expert = Expert(config.expert)
    expert.reset(env)
    push = _PushSchedule(config.perturb, np.random.default_rng([config.seed, 2]))
    injected = 0
    try:
        for f in frames:
            assert np.array_equal(f.image(), ep.frame), f"frame {f.index}: not the state recorded"
            label = expert.act(env)
            applied, _ = push.apply(label)
            assert f.pad == DEFAULT_MAPPING.to_pad(label), f"frame {f.index}"
            injected += DEFAULT_MAPPING.to_pad(applied) != f.pad
            ep.step(applied)
    finally:
        env.close()
    # the mistakes changed what was driven on many frames, never what was stored
    assert injected > 10


def test_parse_seeds() -> None:
    assert parse_seeds("11,12,13") == (11, 12, 13)
    assert parse_seeds("100-103,7") == (100, 101, 102, 103, 7)
    for bad in ("", "a", "5-2", "-3"):
        with pytest.raises(KartError, match="seeds"):
            parse_seeds(bad)


def test_ablation_variants_switch_one_feature_off() -> None:
    from kartdata.targets import TargetConfig
    from kartplay.sim.ablation import AblationConfig, variant_configs

    full, policy = variant_configs("all")
    assert (full.balance, full.recovery_weight, full.targets) == (
        "uniform",
        2.0,
        TargetConfig(("x", "a", "b"), smoothing=3),
    )
    assert policy.smoothing == 0.3
    assert variant_configs("no-recovery")[0] == dataclasses.replace(full, recovery_weight=0.0)
    assert variant_configs("no-balance")[0] == dataclasses.replace(full, balance=None)
    no_smoothing, plain = variant_configs("no-smoothing")
    assert no_smoothing.targets == TargetConfig(("x", "a", "b")) and plain.smoothing == 0.0
    none, _ = variant_configs("none")
    assert (none.balance, none.recovery_weight, none.targets.smoothing) == (None, 0.0, 1)
    with pytest.raises(KartError, match="unknown variant"):
        variant_configs("no-gas")
    with pytest.raises(KartError, match="unknown variant 'no-gas'"):
        AblationConfig("ds", Path("out"), variants=("all", "no-gas"))


def test_cli_bad_seeds_is_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "kartplay.cli", "sim", "record", "--out", str(tmp_path / "r"),
         "--seeds", "5-2", "--steps", "10"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: seeds '5-2': '5-2' is not a seed or a range a-b"
    ]
    assert not (tmp_path / "r").exists()
