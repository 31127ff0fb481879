"""The streaming loader on real shards written by the real sharder."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from loader_dataset import make_dataset

import kartdata
import kartdata.preprocess
from kartdata import balance, split, targets
from kartdata.augment import AugmentConfig, augment_batch
from kartdata.errors import DatasetError
from kartdata.loader import LoadConfig, ShardWarning, dataset_errors, prepare
from kartdata.manifest import Manifest
from kartdata.preprocess import InputSpec
from kartdata.schema import PAD_INDEX, STEERING_CLASSES, STRATA, ClassThresholds, parse_stratum

SMALL = InputSpec(24, 32)
HALF = split.SplitConfig(val_fraction=0.5, salt="t")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("load"))


@pytest.fixture(scope="module")
def index(dataset: Path):  # -> pd.DataFrame
    return kartdata.frames(str(dataset), splits=HALF)


def _collect(ds) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    images, ys, meta = [], [], {"session": [], "frame": [], "stratum": []}
    for batch in ds:
        images.append(batch[0].numpy())
        ys.append(batch[1].numpy())
        if len(batch) > 2:
            for k in meta:
                meta[k].append(batch[2][k].numpy())
    out = {k: np.concatenate(v) for k, v in meta.items() if v}
    out = {k: (v.astype(str) if v.dtype == object else v) for k, v in out.items()}
    return np.concatenate(images), np.concatenate(ys), out


# -- splits -----------------------------------------------------------------


def test_split_by_session_never_leaks(dataset: Path, index) -> None:
    manifest = Manifest.load(str(dataset))
    opts = dict(splits=HALF, input=SMALL, batch_size=64, with_meta=True, augment=False)
    _, _, train = _collect(kartdata.load(str(dataset), split="train", **opts))
    _, _, val = _collect(kartdata.load(str(dataset), split="val", **opts))
    train_sessions, val_sessions = set(train["session"]), set(val["session"])
    assert train_sessions and val_sessions
    assert not train_sessions & val_sessions
    assert train_sessions | val_sessions == manifest.session_keys()
    # Every frame of each split exactly once (no balance asked): the index agrees.
    for name, got in (("train", train), ("val", val)):
        want = index[index["split"] == name]
        assert sorted(zip(got["session"], got["frame"], strict=True)) == sorted(
            zip(want["session"], want["frame"], strict=True)
        )


def test_split_assignment_is_stable_and_explicit_lists_win(dataset: Path) -> None:
    keys = sorted(Manifest.load(str(dataset)).session_keys())
    first = split.assign(keys, HALF)
    # A session's split depends on its key, not on which others exist (as
    # long as the others leave neither side empty: test_split.py).
    some = [
        *[k for k in keys if first[k] == "val"][:1],
        *[k for k in keys if first[k] == "train"][:2],
    ]
    assert len(some) == 3
    assert split.assign(some, HALF) == {k: first[k] for k in some}
    cfg = split.SplitConfig(val_sessions=(keys[0][:12],))
    assert split.sessions_in(keys, "val", cfg) == {keys[0]}
    assert split.sessions_in(keys, "train", cfg) == set(keys[1:])
    _, _, val = _collect(
        kartdata.load(str(dataset), split="val", splits=cfg, input=SMALL, with_meta=True)
    )
    assert set(val["session"]) == {keys[0]}
    with pytest.raises(DatasetError, match="both train and val"):
        split.assign(keys, split.SplitConfig(val_sessions=(keys[0],), train_sessions=(keys[0],)))
    with pytest.raises(DatasetError, match="no session"):
        split.assign(keys, split.SplitConfig(val_sessions=("nope",)))


# -- balance ----------------------------------------------------------------


def test_balance_plan_math() -> None:
    counts = {"left": 100, "straight": 700, "right": 200, "left-recovery": 50}
    natural = balance.plan(counts)
    assert natural.weights["straight"] == pytest.approx(700 / 1050)
    assert natural.epoch_samples == 1050
    p = balance.plan(counts, "uniform", recovery_weight=2.0, epoch_samples=3000)
    assert p.class_mix() == pytest.approx(dict.fromkeys(STEERING_CLASSES, 1 / 3))
    # Within "left", recovery frames count twice: 100 : 2*50.
    assert p.weights["left"] == pytest.approx(p.weights["left-recovery"])
    row = {r.stratum: r for r in p.rows}
    assert row["straight"].repeats == pytest.approx(1000 / 700)
    assert row["left-recovery"].samples == pytest.approx(500)
    # the printed table holds every stratum's figures, not just a header
    lines = str(p).splitlines()
    assert lines[0].split() == ["stratum", "frames", "weight", "samples", "repeats"]
    printed = {cols[0]: [float(c) for c in cols[1:]] for cols in map(str.split, lines[1:-1])}
    assert set(printed) == set(row) == set(STRATA)
    for name, (frames, weight, samples, repeats) in printed.items():
        r = row[name]
        assert frames == r.frames and weight == pytest.approx(r.weight, abs=5e-4)
        assert samples == pytest.approx(r.samples, abs=0.5)
        assert repeats == pytest.approx(r.repeats, abs=5e-3)
    assert printed["straight"][3] == pytest.approx(1.43)
    assert lines[-1] == "epoch: 3000 samples from 1050 frames"
    with pytest.warns(UserWarning, match="no right"):
        p = balance.plan({"left": 10, "straight": 10}, "uniform")
    assert p.class_mix()["right"] == 0 and p.class_mix()["left"] == pytest.approx(0.5)
    with pytest.raises(DatasetError, match="unknown class"):
        balance.plan(counts, {"up": 1.0})


def test_balanced_mix_within_two_percent(dataset: Path) -> None:
    cfg = LoadConfig(
        split="all",
        batch_size=500,
        input=InputSpec(8, 8),
        targets=targets.TargetConfig("class3", class_format="index"),
        balance={"left": 0.2, "straight": 0.3, "right": 0.5},
        recovery_weight=3.0,
        epoch_samples=10_000,
        augment=False,
        with_meta=True,
        deterministic=True,
        seed=7,
    )
    report = kartdata.balance_report(str(dataset), cfg)
    _, ys, meta = _collect(kartdata.load(str(dataset), cfg))
    assert len(ys) == 10_000
    measured = np.bincount(ys, minlength=3) / len(ys)
    want = report.class_mix()
    assert want == pytest.approx({"left": 0.2, "straight": 0.3, "right": 0.5})
    for i, c in enumerate(STEERING_CLASSES):
        assert abs(measured[i] - want[c]) <= 0.02, (c, measured, want)
    strata = Counter(meta["stratum"])
    for s, w in report.weights.items():
        assert abs(strata[s] / len(ys) - w) <= 0.02, (s, strata, report.weights)
    # The class of the target agrees with the stratum the record was sampled from.
    cls = np.array([STEERING_CLASSES.index(parse_stratum(s)[0]) for s in meta["stratum"]])
    assert np.array_equal(cls, ys)


def test_balance_report_counts_frames_of_the_split(dataset: Path, index) -> None:
    report = kartdata.balance_report(str(dataset), splits=HALF, balance="uniform")
    train = index[index["split"] == "train"]
    assert {r.stratum: r.frames for r in report.rows} == {
        s: int((train["stratum"] == s).sum()) for s in STRATA
    }
    assert report.epoch_samples == len(train)
    for r in report.rows:
        if r.frames:
            assert r.repeats == pytest.approx(r.weight * len(train) / r.frames)


# -- targets, augmentation, preprocessing ---------------------------------------


def test_smoothing_and_lookahead_come_from_neighbouring_frames(dataset: Path, index) -> None:
    x = {(s, f): v for s, f, v in zip(index["session"], index["frame"], index["x"], strict=True)}
    last = index.groupby("session")["frame"].max().to_dict()

    def at(s: str, f: int) -> float:
        return x[(s, min(max(f, 0), last[s]))]

    for tc in (
        targets.TargetConfig(("x", "a"), lookahead=3),
        targets.TargetConfig(("x",), smoothing=5),
        targets.TargetConfig(("x",), smoothing=3, lookahead=2),
    ):
        _, ys, meta = _collect(
            kartdata.load(
                str(dataset), split="all", targets=tc, input=SMALL, augment=False, with_meta=True
            )
        )
        half = tc.smoothing // 2
        for (s, f), y in zip(zip(meta["session"], meta["frame"], strict=True), ys, strict=True):
            c = int(f) + tc.lookahead
            want = np.mean([at(s, c + d) for d in range(-half, half + 1)])
            assert y[0] == pytest.approx(want, abs=1e-5)
    with pytest.raises(DatasetError, match="context radius"):
        prepare(str(dataset), targets=targets.TargetConfig(("x",), smoothing=5, lookahead=4))


def test_subset_of_pad_fields_and_tensorkart_vector(dataset: Path, index) -> None:
    _, ys, meta = _collect(
        kartdata.load(str(dataset), split="all", targets="tensorkart", input=SMALL, with_meta=True)
    )
    rows = index.set_index(["session", "frame"])
    want = rows.loc[
        list(zip(meta["session"], meta["frame"], strict=True)), ["x", "y", "a", "b", "r"]
    ]
    assert np.allclose(ys, want.to_numpy(np.float32), atol=1e-6)


def test_mirror_flips_image_and_label(dataset: Path) -> None:
    base = LoadConfig(
        split="train",
        splits=HALF,
        input=InputSpec(30, 40),
        targets="class3",
        shuffle=False,
        deterministic=True,
        seed=1,
        batch_size=32,
    )
    plain_img, plain_y, _ = _collect(kartdata.load(str(dataset), base, augment=False))
    flip = AugmentConfig(mirror=1.0, brightness=0.0, contrast=0.0, shift=0.0)
    img, y, _ = _collect(kartdata.load(str(dataset), base, augment=flip))
    assert np.array_equal(img, plain_img[:, :, ::-1])
    assert np.array_equal(y, plain_y[:, ::-1])  # one-hot [left, straight, right] swaps
    assert plain_y[:, 0].sum() > 0 and plain_y[:, 2].sum() > 0
    _, tk, _ = _collect(kartdata.load(str(dataset), base, augment=flip, targets="tensorkart"))
    _, tk0, _ = _collect(kartdata.load(str(dataset), base, augment=False, targets="tensorkart"))
    assert np.allclose(tk[:, 0], -tk0[:, 0]) and np.array_equal(tk[:, 2:], tk0[:, 2:])


def test_mirror_swaps_left_right_buttons_and_other_augmentations_stay_in_range() -> None:
    pads = np.zeros((2, 3, 16), np.float32)
    pads[..., PAD_INDEX["x"]] = 0.5
    pads[..., PAD_INDEX["dpad_left"]] = 1.0
    pads[..., PAD_INDEX["a"]] = 1.0
    m = targets.mirror_pads(tf.constant(pads)).numpy()
    assert np.all(m[..., PAD_INDEX["x"]] == -0.5)
    assert np.all(m[..., PAD_INDEX["dpad_right"]] == 1) and np.all(
        m[..., PAD_INDEX["dpad_left"]] == 0
    )
    assert np.all(m[..., PAD_INDEX["a"]] == 1)
    images = tf.random.stateless_uniform([8, 20, 30, 3], [1, 2])
    out, _ = augment_batch(
        images, tf.constant(np.zeros((8, 3, 16), np.float32)), tf.constant([3, 4]), AugmentConfig()
    )
    out = out.numpy()
    assert out.shape == (8, 20, 30, 3) and out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out, images.numpy())


def test_validation_is_never_augmented_and_uses_the_shared_preprocessing(
    dataset: Path, index, preprocess_spy: SimpleNamespace
) -> None:
    calls = preprocess_spy.calls
    spec = InputSpec(30, 40, crop_top=0.25)
    img, _, meta = _collect(
        kartdata.load(
            str(dataset),
            split="val",
            splits=HALF,
            input=spec,
            augment=AugmentConfig(mirror=1.0),
            with_meta=True,
            batch_size=16,
        )
    )
    assert calls == [spec]  # traced once: the loader calls THE function
    preprocess_spy.undo()
    for i in (0, len(img) - 1):
        stored = kartdata.frame_image(str(dataset), meta["session"][i], int(meta["frame"][i]))
        want = kartdata.preprocess.preprocess(stored, spec).numpy()
        assert np.allclose(img[i], want, atol=1e-6)


def test_deterministic_mode_repeats_exactly(dataset: Path) -> None:
    cfg = LoadConfig(
        input=SMALL,
        balance="uniform",
        recovery_weight=2.0,
        deterministic=True,
        seed=5,
        shuffle_buffer=50,
        batch_size=8,
    )
    a = [(x.numpy(), y.numpy()) for x, y in kartdata.load(str(dataset), cfg).take(3)]
    b = [(x.numpy(), y.numpy()) for x, y in kartdata.load(str(dataset), cfg).take(3)]
    c = [(x.numpy(), y.numpy()) for x, y in kartdata.load(str(dataset), cfg, seed=6).take(3)]
    assert all(
        np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b, strict=True)
    )
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a, c, strict=True))


def test_an_unbalanced_pass_keeps_the_recorded_mix_all_along(dataset: Path, index) -> None:
    """Shards hold one stratum each: an unbalanced, shuffled pass must still
    carry every stratum in its recorded share in every part of the pass (not
    one class for a shard's length), and give each record exactly once."""
    cfg = LoadConfig(
        input=SMALL, split="all", shuffle=True, shuffle_buffer=1, batch_size=16, seed=3,
        with_meta=True,
    )  # fmt: skip
    _, _, meta = _collect(kartdata.load(str(dataset), cfg))
    kept = index[~index["excluded"]]
    assert sorted(zip(meta["session"], meta["frame"], strict=True)) == sorted(
        zip(kept["session"].astype(str), kept["frame"], strict=True)
    )
    share = kept["stratum"].astype(str).value_counts(normalize=True)
    assert len(share) >= 3
    quarter = len(meta["stratum"]) // 4
    for part in range(3):  # the last quarter is where the strata run out unevenly
        seen = pd.Series(meta["stratum"][part * quarter : (part + 1) * quarter]).value_counts(
            normalize=True
        )
        for stratum, expected in share.items():
            assert abs(seen.get(stratum, 0.0) - expected) < 0.15, (part, stratum, seen.to_dict())


def test_epoch_size_is_configurable(dataset: Path) -> None:
    n = sum(
        len(y)
        for _, y in kartdata.load(
            str(dataset),
            input=SMALL,
            balance="uniform",
            epoch_samples=130,
            batch_size=50,
            shuffle_buffer=50,
        )
    )
    assert n == 130
    m = sum(
        len(y)
        for _, y in kartdata.load(
            str(dataset), input=SMALL, split="all", epoch_samples=700, batch_size=100
        )
    )
    assert m == 700


# -- damaged shards ---------------------------------------------------------------


def _copy(dataset: Path, tmp_path: Path) -> tuple[Path, Manifest]:
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    return out, Manifest.load(str(out))


def test_truncated_shard_is_named_or_skipped(dataset: Path, tmp_path: Path) -> None:
    ds, manifest = _copy(dataset, tmp_path)
    victim = max(manifest.shards, key=lambda s: s.frames)
    path = ds / victim.path
    path.write_bytes(path.read_bytes()[: victim.bytes // 2])
    with pytest.raises(DatasetError, match=victim.path.split("/")[-1]):
        kartdata.load(str(ds), split="all")
    with pytest.warns(ShardWarning, match=victim.path.split("/")[-1]):
        loaded = kartdata.load(str(ds), split="all", input=SMALL, on_error="skip")
    assert sum(len(y) for _, y in loaded) == manifest.frames - victim.frames


def test_corrupted_shard_is_named_while_reading_or_skipped(dataset: Path, tmp_path: Path) -> None:
    ds, manifest = _copy(dataset, tmp_path)
    victim = max(manifest.shards, key=lambda s: s.frames)
    path = ds / victim.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only reading finds it
    path.write_bytes(bytes(data))
    name = victim.path.split("/")[-1]
    loaded = kartdata.load(str(ds), split="all", input=SMALL)
    with pytest.raises(DatasetError, match=f"{name}: shard is damaged"), dataset_errors():
        for _ in loaded:
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = sum(
            len(y) for _, y in kartdata.load(str(ds), split="all", input=SMALL, on_error="skip")
        )
    assert manifest.frames - victim.frames <= n < manifest.frames
    assert any(name in str(w.message) for w in caught if issubclass(w.category, ShardWarning))


def test_bad_options_are_one_line_errors(dataset: Path) -> None:
    with pytest.raises(DatasetError, match="unknown split"):
        prepare(str(dataset), split="test")
    with pytest.raises(DatasetError, match="unknown target field"):
        prepare(str(dataset), targets=("x", "throttle"))
    with pytest.raises(DatasetError, match="has no frames"):
        prepare(str(dataset), split="val", splits=split.SplitConfig(val_fraction=0.0))
    with pytest.raises(DatasetError, match="no manifest"):
        prepare(str(dataset / "nowhere"))
    with pytest.raises(TypeError, match="unknown load option"):
        prepare(str(dataset), batchsize=3)


def test_import_kartdata_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, kartdata; kartdata.LoadConfig; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_thresholds_come_from_the_manifest(dataset: Path) -> None:
    manifest = Manifest.load(str(dataset))
    assert manifest.classes == ClassThresholds()
    ctx = tf.constant(
        np.zeros((3, 11, 16), np.float32)
        + np.array([-0.5, 0.0, 0.5])[:, None, None] * np.eye(16)[0]
    )
    y = targets.make_targets(
        ctx, targets.TargetConfig("class3", class_format="index"), 5, manifest.classes
    )
    assert y.numpy().tolist() == [0, 1, 2]


def test_play_side_uses_the_same_preprocessing_function() -> None:
    # Exported models (what kartplay runs) preprocess raw frames themselves.
    import kartmodel.artifact as export

    assert export.preprocess is kartdata.preprocess.preprocess
