"""The turn: views slid sideways with labels that steer back (recovery views
without side cameras), in the loader's device stage and in its own path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from loader_dataset import make_dataset

import kartdata
from kartdata.augment import (
    AugmentConfig,
    augment_batch,
    format_boxes,
    mirror_batch,
    parse_boxes,
    photometric_batch,
    turn_batch,
    turn_images,
    turn_pads,
)
from kartdata.loader import FEATURE_TURN, LoadConfig, device_stage
from kartdata.preprocess import InputSpec
from kartdata.schema import PAD_INDEX, PAD_SIZE
from kartdata.split import SplitConfig

X = PAD_INDEX["x"]
KEEP = ((0.5, 0.25, 1.0, 0.75),)
TURN = AugmentConfig(
    mirror=0.0, brightness=0.0, contrast=0.0, shift=0.0, turn=0.2, turn_steer=2.0, turn_share=0.7
)
BASE = LoadConfig(
    split="train",
    splits=SplitConfig(val_fraction=0.5, salt="t"),
    input=InputSpec(30, 40),
    targets="class3",
    deterministic=True,
    seed=3,
    batch_size=32,
    with_meta=True,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("turn"), sessions=4, frames=60)


def _columns(width: int = 40) -> tf.Tensor:
    """Two images whose every pixel holds its own column index."""
    row = tf.range(width, dtype=tf.float32)
    return tf.tile(row[None, None, :, None], [2, 10, 1, 3])


def test_a_turned_view_slides_sideways_and_keeps_what_moves_with_the_camera() -> None:
    images = _columns()
    config = replace(TURN, turn_keep=KEEP)
    out = turn_images(images, tf.constant([1.0, -0.5]), config).numpy()
    # 1.0 x 0.2 x 40 = 8 columns right, the first column repeated into the gap;
    # -0.5 is 4 columns left, the last column repeated
    right = np.concatenate([np.zeros(8), np.arange(32)])
    left = np.concatenate([np.arange(4, 40), np.full(4, 39)])
    assert np.array_equal(out[0, 0, :, 0], right) and np.array_equal(out[1, 0, :, 0], left)
    # the kept box (rows 5-9, columns 10-29) is the original, and so is where
    # it would have slid to (columns 18-37 in the first image, 6-25 in the
    # second), so that no second copy of it is drawn
    original = images.numpy()
    assert np.array_equal(out[0, 5:, 10:38], original[0, 5:, 10:38])
    assert np.array_equal(out[1, 5:, 6:30], original[1, 5:, 6:30])
    assert np.array_equal(out[0, 5:, :10, 0], np.tile(right[:10], (5, 1)))
    assert np.array_equal(out[0, 5:, 38:, 0], np.tile(right[38:], (5, 1)))
    assert np.array_equal(out[1, 5:, :6, 0], np.tile(left[:6], (5, 1)))
    assert np.array_equal(turn_images(images, tf.zeros([2]), config).numpy(), images.numpy())


def test_turned_pads_steer_back_by_the_slide_and_stay_in_range() -> None:
    context = np.zeros([3, 5, PAD_SIZE], np.float32)
    context[..., X] = [[-0.5], [0.9], [0.0]]
    context[..., X + 1] = 0.25  # another field, which must not change
    out = turn_pads(tf.constant(context), tf.constant([0.5, 0.5, -0.25]), TURN).numpy()
    assert np.allclose(out[..., X], [[0.5], [1.0], [-0.5]])
    assert np.array_equal(np.delete(out, X, axis=-1), np.delete(context, X, axis=-1))


def test_augment_batch_is_mirror_then_turn_then_photometric() -> None:
    images = tf.random.stateless_uniform([8, 20, 30, 3], [1, 2])
    context = tf.random.stateless_uniform([8, 3, PAD_SIZE], [3, 4], -1, 1)
    seed = tf.constant([5, 6])
    config = AugmentConfig(turn=0.1, turn_keep=KEEP)
    whole, ctx = augment_batch(images, context, seed, config)
    mirrored, mctx = mirror_batch(images, context, seed, config)
    turned, tctx = turn_batch(mirrored, mctx, seed, config)
    assert np.array_equal(ctx.numpy(), tctx.numpy())
    assert not np.array_equal(tctx.numpy(), mctx.numpy())
    assert np.allclose(whole.numpy(), photometric_batch(turned, seed, config).numpy())


def _device(dataset: Path, augment: Any) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    ds = kartdata.load(str(dataset), BASE, augment=augment, device_stage=True)
    return [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y, _ in ds]


def test_the_loader_steers_turned_labels_back_and_the_device_stage_slides_their_images(
    dataset: Path,
) -> None:
    off = replace(TURN, turn=0.0)
    plain, turned = _device(dataset, off), _device(dataset, TURN)
    assert len(plain) == len(turned) > 1
    counts = {"right": 0, "left": 0, "kept": 0}
    for (p, py), (t, ty) in zip(plain, turned, strict=True):
        assert np.array_equal(t["image"], p["image"])  # the loader leaves pixels alone
        amount = t[FEATURE_TURN]
        x = device_stage(replace(BASE, augment=TURN))(
            {k: tf.constant(v) for k, v in t.items()}, tf.constant([1, 2])
        ).numpy()
        unturned = device_stage(replace(BASE, augment=off))(
            {k: tf.constant(v) for k, v in p.items()}, tf.constant([1, 2])
        ).numpy()
        expected = turn_images(tf.constant(unturned), tf.constant(amount), TURN).numpy()
        assert np.allclose(x, expected, atol=1e-6)
        for i, a in enumerate(amount):
            # a slide of over 0.6 of the turn adds over 1.2 to x in [-1, 1]:
            # past the ±0.15 class thresholds, whatever the label was
            if a > 0.6:
                assert ty[i].argmax() == 2, (a, ty[i])
                counts["right"] += 1
            elif a < -0.6:
                assert ty[i].argmax() == 0, (a, ty[i])
                counts["left"] += 1
            elif a == 0:
                assert np.array_equal(ty[i], py[i]) and np.array_equal(x[i], unturned[i])
                counts["kept"] += 1
    assert min(counts.values()) > 5, counts


def test_without_a_turn_the_device_inputs_carry_no_slide(dataset: Path) -> None:
    (inputs, _), *_ = _device(dataset, replace(TURN, turn=0.0, mirror=0.5))
    assert set(inputs) == {"image", "mirror"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,0,1", "not four numbers"),
        ("a,b,c,d", "not four numbers"),
        ("0.5,0,0.4,1", "top < bottom"),
        ("0,0,1,1.5", "top < bottom"),
    ],
)
def test_bad_keep_boxes_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_boxes(text)


def test_keep_boxes_parse_and_bad_turns_are_refused() -> None:
    assert parse_boxes("0,0.1,0.5,1; 0.6,0,1,0.3;") == ((0, 0.1, 0.5, 1), (0.6, 0, 1, 0.3))
    assert parse_boxes("") == ()
    assert parse_boxes(format_boxes((*KEEP, (0.125, 0, 0.3, 1)))) == (*KEEP, (0.125, 0, 0.3, 1))
    with pytest.raises(ValueError, match=r"turn 1\.5 is not in"):
        AugmentConfig(turn=1.5)
    with pytest.raises(ValueError, match=r"turn_share -0\.1 is not in"):
        AugmentConfig(turn_share=-0.1)
