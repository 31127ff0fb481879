"""Training throughput and input-pipeline wait, from a dataset made by the sharder.

For each model: examples/s of streaming training (``kartmodel.trainer`` over
``kartdata.load``, augmentation on) and the share of step time spent waiting on
the input iterator; the baseline, measured in the same run, is the same train
step fed one constant in-memory batch (the compute ceiling). Also: parameters,
single-frame inference latency, and validation metrics after the short run —
the cost/accuracy comparison of sepnet against PilotNet.

    .venv/bin/python benchmarks/train.py [--sessions 4] [--frames 300] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf

from kartdata import synth
from kartdata.loader import build, prepare
from kartdata.manifest import Manifest
from kartdata.shard import ShardConfig, shard
from kartdata.split import SplitConfig
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.run import Run
from kartmodel.trainer import Trainer, load_config, train


def compute_ceiling(run: Path, steps: int) -> float:
    """examples/s of the train step alone, on one constant batch: the loader's
    first batch (uint8 frames at their stored size: the step preprocesses and
    augments them itself), held in memory and repeated."""
    r = Run.open(run)
    trainer = Trainer(r, steps)
    first = next(
        iter(build(prepare(r.config.dataset, load_config(r.config, "train", device_stage=True))))
    )
    ds = tf.data.Dataset.from_tensors(first).repeat()
    trainer.run_pass(ds, True, 3)  # trace
    _, timing = trainer.run_pass(ds, True, steps)
    return timing.examples / timing.step_s


def latency_ms(run: Path, n: int = 50) -> float:
    model, _ = Run.open(run).load_model("last")
    f = tf.function(lambda x: model(x, training=False))
    x = tf.zeros((1, *model.input_shape[1:]))
    f(x)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f(x).numpy()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--models", default="pilotnet,sepnet")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kartkit-bench-train-"))
    for i in range(args.sessions):
        synth.make_native(tmp / "rec" / f"s{i}", args.frames, seed=i, width=320, height=240,
                          recovery_share=0.2 if i % 2 else 0.0)  # fmt: skip
    shard([tmp / "rec"], tmp / "ds", ShardConfig(workers=0, validate=False))
    keys = sorted(s.key for s in Manifest.load(str(tmp / "ds")).sessions)
    print(f"dataset: {args.sessions} sessions x {args.frames} frames (320x240 JPEG), "
          f"1 held out; batch {args.batch}; {os.cpu_count()} CPU cores; "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")  # fmt: skip
    rows = []
    for name in args.models.split(","):
        config = TrainConfig(
            str(tmp / "ds"), model=name, epochs=args.epochs, batch_size=args.batch, seed=0,
            data=DataOptions(splits=SplitConfig(val_sessions=(keys[0],)), augment=True),
        )  # fmt: skip
        result = train(config, tmp / f"run-{name}", progress=None)
        later = result.history[1:] or result.history  # epoch 1 includes tracing
        eps = statistics.median(r["examples_per_s"] for r in later)
        wait = statistics.median(r["input_wait_share"] for r in later)
        ceiling = compute_ceiling(tmp / f"run-{name}", 10)
        last = result.history[-1]
        params = Run.open(tmp / f"run-{name}").build_model().count_params()
        rows.append((name, params, eps, wait, ceiling, latency_ms(tmp / f"run-{name}"), last))
    print(f"{'model':<10}{'params':>10}{'ex/s':>8}{'wait':>7}{'ceiling':>9}{'ratio':>7}"
          f"{'ms/frame':>10}{'val loss':>10}{'steer MAE':>10}{'bal.acc':>9}")  # fmt: skip
    for name, params, eps, wait, ceiling, ms, last in rows:
        print(f"{name:<10}{params:>10,}{eps:>8.0f}{100 * wait:>6.1f}%{ceiling:>9.0f}"
              f"{eps / ceiling:>7.2f}{ms:>10.2f}{last['val_loss']:>10.4f}"
              f"{last['val_steer_mae']:>10.4f}{last['val_balanced_accuracy']:>9.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
