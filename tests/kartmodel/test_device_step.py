"""The trainer's steps take the loader's uint8 batches and do the per-pixel
float work themselves (``kartdata.loader.device_stage``), with an augmentation
seed that follows the optimizer step, so a resumed run trains as an
uninterrupted one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kartdata.augment import AugmentConfig
from kartdata.loader import build, prepare
from kartdata.manifest import Manifest
from kartdata.preprocess import preprocess
from kartdata.split import SplitConfig
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.run import Run
from kartmodel.trainer import Trainer, load_config


@pytest.fixture(scope="module")
def config(dataset: Path) -> TrainConfig:
    return TrainConfig(
        str(dataset),
        model="categorical",
        height=36,
        width=64,
        batch_size=16,
        seed=4,
        schedule="constant",
        mixed_precision="off",
        data=DataOptions(splits=SplitConfig(val_sessions=("s3",)), augment=True),
    )


@pytest.fixture(scope="module")
def batches(config: TrainConfig) -> list[tuple[tf.Tensor, tf.Tensor]]:
    prep = prepare(config.dataset, load_config(config, "train", device_stage=True))
    return [(x, y) for x, y in build(prep).take(2)]


def _trainer(config: TrainConfig, path: Path, seed: int | None = None) -> Trainer:
    keras.utils.set_random_seed(4)  # the same initial weights every time
    run = Run(path, config, Manifest.load(config.dataset).classes)
    trainer = Trainer(run, steps_per_epoch=2)
    # Dropout draws from a keras seed generator whose state no checkpoint
    # holds; off (before the step is traced), only the augmentation is random.
    for layer in trainer.model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    if seed is not None:
        trainer._augment_seed = seed
    return trainer


def _weights(trainer: Trainer) -> list[np.ndarray]:
    return [np.asarray(w) for w in trainer.model.weights]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.allclose(p, q, atol=1e-6) for p, q in zip(a, b, strict=True))


def test_loader_batches_are_uint8_at_the_stored_size(batches) -> None:  # type: ignore[no-untyped-def]
    x, y = batches[0]
    assert x["image"].dtype == tf.uint8 and tuple(x["image"].shape[1:]) == (120, 160, 3)
    assert x["mirror"].dtype == tf.bool and x["mirror"].shape == (y.shape[0],)


def test_resumed_steps_augment_as_uninterrupted_ones(
    config: TrainConfig,
    batches,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    straight = _trainer(config, tmp_path / "a")
    for b in batches:
        straight._train_step(b)
    assert int(straight.optimizer.iterations.numpy()) == 2

    first = _trainer(config, tmp_path / "b")
    first._train_step(batches[0])
    saved = first.checkpoint.save(str(tmp_path / "b" / "one"))
    resumed = _trainer(config, tmp_path / "c")
    resumed.checkpoint.restore(saved).assert_existing_objects_matched()
    # Each step draws anew; the draw is restored with the optimizer's step.
    assert np.array_equal(resumed._step_seed().numpy(), first._step_seed().numpy())
    assert not np.array_equal(first._step_seed().numpy(), straight._step_seed().numpy())
    resumed._train_step(batches[1])
    assert _same(_weights(resumed), _weights(straight))

    # The control: another augmentation seed trains to other weights, so the
    # step really augments, with the seed it derives.
    other = _trainer(config, tmp_path / "d", seed=5)
    for b in batches:
        other._train_step(b)
    assert not _same(_weights(other), _weights(straight))


def test_validation_step_preprocesses_without_augmenting(
    config: TrainConfig,
    batches,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    trainer = _trainer(config, tmp_path / "v")
    x, y = batches[0]
    x = {"image": x["image"], "mirror": tf.zeros_like(x["mirror"])}
    stats = trainer._val_step((x, y))
    pred = trainer.model(preprocess(x["image"], config.spec), training=False)
    want = float(tf.reduce_sum(trainer.loss_fn(y, pred)))
    assert float(stats["loss_sum"]) == pytest.approx(want, rel=1e-5)


def test_a_turned_load_trains_on_slid_images(config: TrainConfig, tmp_path: Path) -> None:
    turn = AugmentConfig(turn=0.2, turn_keep=((0.4, 0.4, 0.7, 0.6),))
    turned = replace(config, data=replace(config.data, augment=turn))
    prep = prepare(turned.dataset, load_config(turned, "train", device_stage=True))
    x, y = next(iter(build(prep)))
    assert x["turn"].dtype == tf.float32 and (x["turn"].numpy() != 0).any()
    slid = _trainer(turned, tmp_path / "t")
    slid._train_step((x, y))
    # the control: the same batch with every slide taken back trains otherwise,
    # so the step slides the images it is told to
    flat = _trainer(turned, tmp_path / "u")
    flat._train_step(({**x, "turn": tf.zeros_like(x["turn"])}, y))
    assert not _same(_weights(slid), _weights(flat))
