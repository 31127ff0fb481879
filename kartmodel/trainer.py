"""Streaming training: a custom loop over ``kartdata.load`` batches.

A hand-written loop (not ``Model.fit``) so that the time spent waiting on the
input pipeline can be told apart from the time spent in the train step — the
share that says whether the loader keeps the accelerator busy. Each epoch:
train on the ``train`` split, validate on the held-out ``val`` sessions, write
a CSV row and TensorBoard scalars, keep the best weights by the monitored
metric, then checkpoint model + optimizer + epoch, so that ``resume`` after a
kill continues with the same optimizer state and learning-rate step.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from kartdata.errors import KartError
from kartdata.loader import LoadConfig, dataset_errors, device_stage, prepare
from kartmodel import distribute, losses
from kartmodel.config import TrainConfig
from kartmodel.metrics import Totals, batch_stats
from kartmodel.run import BEST_WEIGHTS, CKPT_DIR, HISTORY_FILE, RUN_FILE, TB_DIR, Run

#: Checkpoints kept besides the newest (each holds model and optimizer state).
KEEP_CHECKPOINTS = 2


@dataclass
class EpochStats:
    """Host-side timings of one pass: input wait is the time ``next()`` on the
    iterator blocked; step is the time from having a batch to having its results."""

    steps: int = 0
    examples: float = 0.0
    wait_s: float = 0.0
    step_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.wait_s + self.step_s

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_share(self) -> float:
        return self.wait_s / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrainResult:
    run: Path
    epochs: int
    history: list[dict[str, Any]]
    best: dict[str, Any]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def load_config(
    config: TrainConfig, split: str, epoch: int = 0, *, device_stage: bool = False
) -> LoadConfig:
    """The loader settings of a split. The seed changes per epoch (so epochs see
    different orders) but is a function of the epoch, so a resumed run reads
    what an uninterrupted one would have. The trainer loads with
    ``device_stage`` (uint8 batches, preprocessed in its step); ``evaluate``
    does not: it needs no speed, and the in-loader path is the one a user's own
    ``kartdata.load`` gives, so its figures compare with theirs."""
    d = config.data
    train = split == "train"
    seed = None if config.seed is None else config.seed * 10_000 + epoch
    return LoadConfig(
        split=split,
        batch_size=config.batch_size,
        input=config.spec,
        targets=config.target_config,
        balance=d.balance if train else None,
        recovery_weight=d.recovery_weight if train else 1.0,
        augment=d.augment if train else False,
        splits=d.splits,
        shuffle=train,
        shuffle_buffer=d.shuffle_buffer,
        deterministic=config.deterministic,
        seed=seed,
        drop_remainder=False,
        device_stage=device_stage,
    )


def _unpack(batch: Any) -> tuple[Any, Any]:
    return batch[0], batch[1]


# ---------------------------------------------------------------------------
# Model, optimizer, schedule
# ---------------------------------------------------------------------------


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> Any:
    lr = config.learning_rate
    warmup = round(config.warmup_epochs * steps_per_epoch)
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return lr
    if config.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=steps_per_epoch, decay_rate=config.decay_rate
        )
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            lr / 10, max(1, total - warmup), alpha=0.01, warmup_target=lr, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(lr, total, alpha=0.01)


def current_lr(optimizer: Any) -> float:
    return float(tf.convert_to_tensor(optimizer.learning_rate).numpy())


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


class Trainer:
    """Holds the model, optimizer and compiled steps of one run."""

    def __init__(self, run: Run, steps_per_epoch: int, strategy: Any = None) -> None:
        self.run = run
        self.config = run.config
        self.layout = run.layout
        self.classes = run.classes
        self.steps_per_epoch = steps_per_epoch
        #: tf.data service dispatcher that reads and decodes for this run (issue 9).
        self.data_service: str | None = None
        self.strategy = strategy or distribute.choose_strategy()
        self.loss_fn = losses.get(self.config.loss_name)
        mixed = distribute.use_mixed_precision(self.config.mixed_precision)
        previous = keras.mixed_precision.global_policy().name
        with self.strategy.scope():
            if mixed:
                keras.mixed_precision.set_global_policy("mixed_float16")
            try:
                self.model = run.build_model()
            finally:
                keras.mixed_precision.set_global_policy(previous)
            opt = keras.optimizers.Adam(make_schedule(self.config, steps_per_epoch))
            self.optimizer = keras.optimizers.LossScaleOptimizer(opt) if mixed else opt
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.best = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="best")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch, best=self.best
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(run.file(CKPT_DIR)), max_to_keep=KEEP_CHECKPOINTS + 1
        )
        # The loader's per-pixel float work (preprocess, then contrast /
        # brightness / shift for training) runs here, inside the compiled step:
        # on the accelerator when there is one, off the input pipeline's CPUs.
        self._device_train = device_stage(load_config(self.config, "train", device_stage=True))
        self._device_val = device_stage(load_config(self.config, "val", device_stage=True))
        self._augment_seed = 0 if self.config.seed is None else self.config.seed
        self._train_step = tf.function(self._train_replicas, reduce_retracing=True)
        self._val_step = tf.function(self._val_replicas, reduce_retracing=True)

    # -- steps ---------------------------------------------------------------

    def _stats(self, y: Any, pred: Any, per_example: Any) -> dict[str, Any]:
        stats = batch_stats(self.layout, self.classes, y, pred)
        stats["loss_sum"] = tf.reduce_sum(per_example)
        stats["loss_weight"] = tf.cast(tf.shape(per_example)[0], tf.float32)
        return stats

    def _step_seed(self) -> Any:
        """The train step's augmentation seed: a function of the run seed, the
        replica and the optimizer step, so a resumed run augments each step as
        an uninterrupted one would, with no state of its own to checkpoint, and
        replicas draw differently for their slices of one global batch."""
        ctx = tf.distribute.get_replica_context()
        replica = 0 if ctx is None else ctx.replica_id_in_sync_group
        first = tf.cast(replica, tf.int64) + self._augment_seed * 1024
        step = tf.cast(tf.convert_to_tensor(self.optimizer.iterations), tf.int64)
        return tf.stack([first, step])

    def _train_one(self, batch: Any) -> dict[str, Any]:
        x, y = _unpack(batch)
        x = self._device_train(x, self._step_seed())
        with tf.GradientTape() as tape:
            pred = self.model(x, training=True)
            per_example = self.loss_fn(y, pred)
            loss = tf.nn.compute_average_loss(per_example)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return self._stats(y, pred, per_example)

    def _val_one(self, batch: Any) -> dict[str, Any]:
        x, y = _unpack(batch)
        x = self._device_val(x)
        pred = self.model(x, training=False)
        return self._stats(y, pred, self.loss_fn(y, pred))

    def _reduce(self, per_replica: dict[str, Any]) -> dict[str, Any]:
        s = self.strategy
        return {
            k: s.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()
        }

    def _train_replicas(self, batch: Any) -> dict[str, Any]:
        return self._reduce(self.strategy.run(self._train_one, args=(batch,)))

    def _val_replicas(self, batch: Any) -> dict[str, Any]:
        return self._reduce(self.strategy.run(self._val_one, args=(batch,)))

    # -- passes --------------------------------------------------------------

    def run_pass(
        self,
        dataset: Any,
        train: bool,
        max_steps: int | None,
        on_step: Callable[[int, Totals, EpochStats], None] | None = None,
    ) -> tuple[Totals, EpochStats]:
        totals, timing = Totals(self.layout), EpochStats()
        step_fn = self._train_step if train else self._val_step
        iterator: Iterator[Any] = iter(
            distribute.distribute_input(self.strategy, dataset, self.data_service)
        )
        with dataset_errors():
            while max_steps is None or timing.steps < max_steps:
                t0 = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                # .numpy() waits for the step: its time is then really the step's.
                stats = {k: v.numpy() for k, v in step_fn(batch).items()}
                t2 = time.perf_counter()
                totals.add(stats)
                timing.steps += 1
                timing.examples += float(stats["count"])
                timing.wait_s += t1 - t0
                timing.step_s += t2 - t1
                if on_step is not None:
                    on_step(timing.steps, totals, timing)
        return totals, timing


def _fmt(logs: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = []
    for k in keys:
        if k in logs and not (isinstance(logs[k], float) and math.isnan(logs[k])):
            parts.append(f"{k} {logs[k]:.4g}")
    return "  ".join(parts)


_SHOWN = ("loss", "steer_mae", "balanced_accuracy", "button_accuracy")


def _improved(value: float, best: float, mode: str) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value < best if mode == "min" else value > best


def _append_history(path: Path, row: dict[str, Any], keep_through: int) -> None:
    """Append a row, first dropping rows of epochs after ``keep_through`` (an
    epoch whose row was written but whose checkpoint was not is redone)."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r and int(r["epoch"]) <= keep_through]
    rows.append(row)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def steps_for(config: TrainConfig, split: str) -> tuple[int, int]:
    """(steps of one pass over ``split``, frames in it) from the manifest and
    indexes alone — the schedule needs the epoch length before any batch."""
    prep = prepare(config.dataset, load_config(config, split))
    frames = prep.plan.epoch_samples if split == "train" else prep.frames
    return max(1, math.ceil(frames / config.batch_size)), frames


def train(
    config: TrainConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    epochs: int | None = None,
    progress: Progress | None = _stderr,
    strategy: Any = None,
    data_service: str | None = None,
) -> TrainResult:
    """Train ``config`` into the run directory ``out`` (or continue it with
    ``resume``; then ``config`` may be ``None`` and ``epochs`` raises the total)."""
    say = progress or (lambda _line: None)
    out = Path(out)
    if resume:
        run = Run.open(out)
        run = Run(run.path, run.config.with_epochs(epochs), run.classes)
        if epochs is not None:
            run.save()
    else:
        if config is None:
            raise KartError("train: a TrainConfig is needed unless resuming")
        if (out / RUN_FILE).exists() or (out / CKPT_DIR).exists():
            raise KartError(
                f"{out}: already holds a training run; pass --resume to continue it "
                "or choose another --out"
            )
        from kartdata.manifest import Manifest

        config = config.with_epochs(epochs)
        manifest = Manifest.load(config.dataset)
        run = Run(out, config, manifest.classes)
        run.save()
    config = run.config

    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    train_steps, train_frames = steps_for(config, "train")
    steps_per_epoch = config.steps_per_epoch or train_steps
    _, val_frames = steps_for(config, "val")
    trainer = Trainer(run, steps_per_epoch, strategy)
    trainer.data_service = data_service
    start = 0
    if resume:
        latest = trainer.manager.latest_checkpoint
        if latest is None:
            raise KartError(f"{out / CKPT_DIR}: no checkpoint to resume from")
        trainer.checkpoint.restore(latest).assert_existing_objects_matched()
        start = int(trainer.epoch.numpy())
        say(
            f"resuming {out} after epoch {start} (optimizer step {int(trainer.optimizer.iterations.numpy())})"
        )
    say(
        f"{config.model}: {trainer.model.count_params():,} parameters, input "
        f"{config.spec.height}x{config.spec.width}, targets {','.join(run.layout.names)}; "
        f"{train_frames} train / {val_frames} val examples; {steps_per_epoch} steps per epoch "
        f"on {trainer.strategy.num_replicas_in_sync} replica(s)"
    )

    writers = {
        "train": tf.summary.create_file_writer(str(run.file(TB_DIR) / "train")),
        "val": tf.summary.create_file_writer(str(run.file(TB_DIR) / "val")),
    }
    monitor, mode = config.monitor_name, config.monitor_mode
    history_path = run.file(HISTORY_FILE)
    every = max(1, config.log_every)

    for epoch in range(start, config.epochs):
        # Prepared, not built: distribute.distribute_input gives each worker its shards.
        ds = prepare(config.dataset, load_config(config, "train", epoch, device_stage=True))
        lr_start = current_lr(trainer.optimizer)

        def on_step(step: int, totals: Totals, timing: EpochStats, epoch: int = epoch) -> None:
            if step % every == 0 or step == steps_per_epoch:
                say(
                    f"epoch {epoch + 1}/{config.epochs}  step {step}/{steps_per_epoch}  "
                    f"{_fmt(totals.result(), ('loss',))}  {timing.examples_per_s:.0f} ex/s  "
                    f"input wait {100 * timing.wait_share:.1f}%"
                )
                with writers["train"].as_default():
                    tf.summary.scalar(
                        "step_loss",
                        totals.result().get("loss", math.nan),
                        step=int(trainer.optimizer.iterations.numpy()),
                    )

        train_totals, timing = trainer.run_pass(ds, True, config.steps_per_epoch, on_step)
        if timing.steps == 0:
            raise KartError(f"{config.dataset}: the training split gave no batches")
        val_ds = prepare(config.dataset, load_config(config, "val", device_stage=True))
        val_totals, _ = trainer.run_pass(val_ds, False, config.val_steps)

        logs: dict[str, Any] = {"epoch": epoch + 1}
        logs.update(train_totals.result())
        logs.update({f"val_{k}": v for k, v in val_totals.result().items()})
        logs.update(
            lr=lr_start,
            lr_end=current_lr(trainer.optimizer),
            step=int(trainer.optimizer.iterations.numpy()),
            examples_per_s=timing.examples_per_s,
            input_wait_share=timing.wait_share,
            seconds=timing.seconds,
        )
        if monitor not in logs:
            raise KartError(
                f"monitor {monitor!r} is not a metric of this run; metrics are "
                f"{', '.join(k for k in logs if k.startswith('val_'))}"
            )
        value = float(logs[monitor])
        improved = _improved(value, float(trainer.best.numpy()), mode)
        logs["best"] = int(improved)
        for name in ("train", "val"):
            with writers[name].as_default():
                for k, v in logs.items():
                    mine = k.startswith("val_") == (name == "val")
                    if mine and isinstance(v, int | float) and k not in ("epoch", "best", "step"):
                        tf.summary.scalar(k.removeprefix("val_"), v, step=epoch + 1)
            writers[name].flush()
        if distribute.is_chief():
            if improved:
                tmp = str(run.file(BEST_WEIGHTS)) + ".tmp.weights.h5"
                trainer.model.save_weights(tmp)
                os.replace(tmp, run.file(BEST_WEIGHTS))
            _append_history(history_path, logs, keep_through=epoch)
        if improved:
            trainer.best.assign(value)
        trainer.epoch.assign(epoch + 1)
        trainer.manager.save(checkpoint_number=epoch + 1)
        say(
            f"epoch {epoch + 1}/{config.epochs}  {_fmt(train_totals.result(), _SHOWN)}  |  val "
            f"{_fmt(val_totals.result(), _SHOWN)}  |  lr {lr_start:.3g}  "
            f"{timing.examples_per_s:.0f} ex/s  input wait {100 * timing.wait_share:.1f}%"
            + ("  *best*" if improved else "")
        )
    history = run.history()
    return TrainResult(out, int(trainer.epoch.numpy()), history, run.best_row())
