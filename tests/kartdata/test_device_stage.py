"""``device_stage=True``: the loader ships uint8 frames as stored, with labels
mirrored where a per-example flag says, and :func:`kartdata.loader.device_stage`
does the per-pixel float work (the image's mirror included) in the train step —
with the same results as the all-in-loader path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from loader_dataset import make_dataset

import kartdata
import kartdata.preprocess
import kartmodel.artifact as export
from kartdata import split, synth
from kartdata.augment import AugmentConfig, augment_batch, mirror_batch, photometric_batch
from kartdata.loader import LoadConfig, device_stage, prepare
from kartdata.preprocess import InputSpec
from kartdata.shard import ShardConfig, shard

HALF = split.SplitConfig(val_fraction=0.5, salt="t")
SPEC = InputSpec(30, 40, crop_top=0.25)
BASE = LoadConfig(
    split="train",
    splits=HALF,
    input=SPEC,
    targets="class3",
    balance="uniform",
    recovery_weight=2.0,
    deterministic=True,
    seed=3,
    batch_size=32,
    shuffle_buffer=64,
    with_meta=True,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("device"), sessions=4, frames=60)


def _batches(ds) -> list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]:  # type: ignore[no-untyped-def]
    def numpy(x: Any) -> Any:
        return {k: v.numpy() for k, v in x.items()} if isinstance(x, dict) else x.numpy()

    return [(numpy(x), y.numpy(), numpy(m)) for x, y, m in ds]


def _stage(cfg: LoadConfig, inputs: dict[str, np.ndarray], seed: tuple[int, int]) -> np.ndarray:
    return device_stage(cfg)(
        {k: tf.constant(v) for k, v in inputs.items()}, tf.constant(seed)
    ).numpy()


def test_device_stage_of_uint8_batches_equals_the_in_loader_path(dataset: Path) -> None:
    cfg = replace(BASE, augment=False)
    in_loader = _batches(kartdata.load(str(dataset), cfg))
    device = _batches(kartdata.load(str(dataset), cfg, device_stage=True))
    assert len(in_loader) == len(device) > 1
    for (x, y, meta), (inputs, y8, meta8) in zip(in_loader, device, strict=True):
        u8 = inputs["image"]
        assert u8.dtype == np.uint8 and u8.shape[1:] == (120, 160, 3)  # the stored size
        assert not inputs["mirror"].any()
        assert np.array_equal(meta["frame"], meta8["frame"])
        assert np.array_equal(meta["session"], meta8["session"])
        assert np.array_equal(y, y8)
        out = _stage(cfg, inputs, (1, 2))
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.allclose(out, x, atol=1e-6)


def test_loader_mirrors_labels_and_the_device_stage_the_images(dataset: Path) -> None:
    # The loader's images are the stored frames; the flag says whose labels it
    # mirrored, and the device stage mirrors exactly those images.
    mirror_only = AugmentConfig(brightness=0.0, contrast=0.0, shift=0.0)
    plain = _batches(kartdata.load(str(dataset), BASE, augment=False, device_stage=True))
    aug = _batches(kartdata.load(str(dataset), BASE, augment=mirror_only, device_stage=True))
    flipped = kept = 0
    for (p, py, pm), (a, ay, am) in zip(plain, aug, strict=True):
        assert np.array_equal(pm["frame"], am["frame"])
        assert np.array_equal(a["image"], p["image"])
        x = _stage(replace(BASE, augment=mirror_only), a, (1, 2))
        unflipped = _stage(replace(BASE, augment=False), p, (1, 2))
        for i, flip in enumerate(a["mirror"]):
            if flip:
                assert np.array_equal(ay[i], py[i][::-1])  # one-hot [left, straight, right]
                assert np.allclose(x[i], unflipped[i][:, ::-1], atol=1e-6)
                flipped += 1
            else:
                assert np.array_equal(ay[i], py[i])
                assert np.array_equal(x[i], unflipped[i])
                kept += 1
    assert flipped > 10 and kept > 10
    swapped = sum(
        int(not np.array_equal(ay[i], py[i]))
        for (_, py, _), (a, ay, _) in zip(plain, aug, strict=True)
        for i in np.flatnonzero(a["mirror"])
    )
    assert swapped > 0  # some mirrored example was a turn, so the swap was exercised


def test_device_mirror_then_device_stage_equals_the_in_loader_mirror(dataset: Path) -> None:
    flip_all = AugmentConfig(mirror=1.0, brightness=0.0, contrast=0.0, shift=0.0)
    in_loader = _batches(kartdata.load(str(dataset), BASE, augment=flip_all))
    device = _batches(kartdata.load(str(dataset), BASE, augment=flip_all, device_stage=True))
    for (x, y, _), (inputs, y8, _) in zip(in_loader, device, strict=True):
        assert inputs["mirror"].all()
        assert np.array_equal(y, y8)
        assert np.allclose(_stage(replace(BASE, augment=flip_all), inputs, (0, 0)), x, atol=1e-6)


def test_augment_batch_is_its_mirror_then_its_photometric_half() -> None:
    images = tf.random.stateless_uniform([6, 20, 30, 3], [1, 2])
    context = tf.random.stateless_uniform([6, 3, 16], [3, 4], -1, 1)
    seed = tf.constant([5, 6])
    whole, ctx = augment_batch(images, context, seed, AugmentConfig(mirror=0.5))
    half, ctx2 = mirror_batch(images, context, seed, AugmentConfig(mirror=0.5))
    assert np.array_equal(ctx.numpy(), ctx2.numpy())
    assert np.allclose(whole.numpy(), photometric_batch(half, seed, AugmentConfig()).numpy())
    assert not np.allclose(whole.numpy(), half.numpy())


def test_device_stage_augments_train_only_and_is_a_function_of_its_seed(dataset: Path) -> None:
    image = next(iter(kartdata.load(str(dataset), BASE, device_stage=True)))[0]["image"]
    u8 = {"image": image, "mirror": tf.zeros([image.shape[0]], tf.bool)}
    plain = kartdata.preprocess.preprocess(image, SPEC).numpy()
    train = device_stage(BASE)
    a = train(u8, tf.constant([1, 7])).numpy()
    assert a.shape == plain.shape and a.min() >= 0.0 and a.max() <= 1.0
    assert not np.allclose(a, plain, atol=1e-3)
    assert np.array_equal(a, train(u8, tf.constant([1, 7])).numpy())
    assert not np.allclose(a, train(u8, tf.constant([1, 8])).numpy())
    val = device_stage(replace(BASE, split="val"))
    assert np.array_equal(val(u8).numpy(), plain)  # never augmented outside train
    with pytest.raises(ValueError, match="seed"):
        train(u8)


def test_device_stage_calls_the_preprocessing_play_uses(
    dataset: Path, preprocess_spy: SimpleNamespace
) -> None:
    calls = preprocess_spy.calls
    u8 = next(iter(kartdata.load(str(dataset), BASE, device_stage=True)))[0]
    assert calls == []  # the loader itself no longer preprocesses
    compiled = tf.function(device_stage(BASE))
    compiled(u8, tf.constant([1, 2]))
    compiled(u8, tf.constant([3, 4]))
    assert calls == [SPEC]  # traced once, inside the compiled step
    preprocess_spy.undo()
    assert export.preprocess is kartdata.preprocess.preprocess is preprocess_spy.original


def test_sessions_of_different_sizes_are_fitted_to_the_largest(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    synth.make_native(rec / "big", 12, seed=1, width=160, height=120, track="a")
    synth.make_native(rec / "small", 12, seed=2, width=80, height=60, track="a")
    ds = tmp_path / "ds"
    shard([rec], ds, ShardConfig(workers=0, validate=False))
    cfg = LoadConfig(split="all", input=SPEC, shuffle=False, batch_size=8, with_meta=True)
    assert prepare(str(ds), cfg, device_stage=True).frames == 24
    seen = set()
    for inputs, _, meta in kartdata.load(str(ds), cfg, device_stage=True):
        images = inputs["image"]
        assert images.dtype == tf.uint8 and tuple(images.shape[1:]) == (120, 160, 3)
        for i, (session, frame) in enumerate(
            zip(meta["session"].numpy(), meta["frame"].numpy(), strict=True)
        ):
            stored = kartdata.frame_image(str(ds), session.decode(), int(frame))
            want = stored
            if stored.shape[:2] != (120, 160):
                want = tf.cast(tf.image.resize(stored, (120, 160), antialias=True), tf.uint8)
            assert np.array_equal(images[i].numpy(), np.asarray(want))
            seen.add(stored.shape[:2])
    assert seen == {(120, 160), (60, 80)}
