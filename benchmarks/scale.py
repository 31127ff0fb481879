"""Per-core figures for the capacity plan (docs/scale.md), and the Ray engine
against the local engine on the same sessions.

Measured here, each on ONE core (tf.data / TensorFlow thread pools of 1, a
single shard process), so that the plan can multiply them by cores:

- JPEG decode of a frame at the storage size (320x240, quality 90);
- the whole training input pipeline per example (read, inflate, parse, decode,
  preprocess, augment, targets: ``kartdata.load``);
- sharding (PNG 640x480 recordings → shards), with and without validation;
- the PilotNet train step on CPU (batch 64, constant batch: the compute alone),
  and PilotNet's FLOPs per example, from which the GPU rate is estimated;
- bytes per frame in the dataset.

Baseline, measured in the same run: ``kartdata shard --engine local`` with 2
worker processes; the Ray engine with 2 actors on the same sessions (on a Ray
started beforehand, whose start time is reported apart) is reported as a ratio
to it.

    .venv/bin/python benchmarks/scale.py [--sessions 4] [--frames 60]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def _median_rate(fn, n: int, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def one_thread_options():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    o = tf.data.Options()
    o.threading.private_threadpool_size = 1
    o.threading.max_intra_op_parallelism = 1
    o.autotune.enabled = False
    return o


def jpeg_decode_per_core(n: int = 2000) -> float:
    import tensorflow as tf
    from PIL import Image

    from kartdata import synth

    frames = []
    for i in range(20):
        buf = io.BytesIO()
        Image.fromarray(synth.render(0.3 * np.sin(i), i, 320, 240, i)).save(
            buf, format="JPEG", quality=90
        )
        frames.append(buf.getvalue())
    ds = (
        tf.data.Dataset.from_tensor_slices(frames)
        .repeat(n // len(frames))
        .map(lambda b: tf.io.decode_jpeg(b, channels=3))
        .with_options(one_thread_options())
    )

    def run() -> None:
        for _ in ds:
            pass

    run()
    return _median_rate(run, n)


def loader_per_core(dataset: str, batches: int = 30) -> float:
    import kartdata

    ds = kartdata.load(dataset, split="all", batch_size=64, balance="uniform", seed=1)
    ds = ds.repeat().take(batches).with_options(one_thread_options())

    def run() -> None:
        for _ in ds:
            pass

    run()
    return _median_rate(run, batches * 64)


def pilotnet_step(batch: int = 64, steps: int = 10) -> tuple[float, float]:
    """(CPU examples/s of the train step on 1 thread, forward MFLOPs per example)."""
    import keras
    import tensorflow as tf

    from kartmodel import models
    from kartmodel.config import TrainConfig

    cfg = TrainConfig("unused")
    model = models.build("pilotnet", cfg.spec, cfg.layout)
    opt = keras.optimizers.Adam(1e-3)
    x = tf.random.uniform((batch, *cfg.spec.shape))
    y = tf.random.uniform((batch, cfg.layout.size), -1, 1)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step().numpy()

    def run() -> None:
        for _ in range(steps):
            step()
        step().numpy()

    rate = _median_rate(run, (steps + 1) * batch)
    # forward FLOPs: 2 per multiply-add of each conv / dense layer
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2 * h * w * c * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return rate, flops / 1e6


def make_recordings(root: Path, sessions: int, frames: int) -> None:
    from kartdata import synth

    for i in range(sessions):
        synth.make_native(root / f"s{i}", frames, seed=i, recovery_share=0.2)


def shard_seconds(rec: Path, out: Path, **config: object) -> tuple[float, object]:
    from kartdata.shard import ShardConfig, shard

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    report = shard([rec], out, ShardConfig(**config))  # type: ignore[arg-type]
    return time.perf_counter() - t, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    n = args.sessions * args.frames
    import tensorflow as tf

    # one core: every per-core figure below is measured on a single thread
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        os.environ["KARTKIT_CACHE"] = str(tmpd / "cache")
        make_recordings(tmpd / "rec", args.sessions, args.frames)
        rows = []

        s_off, _ = shard_seconds(tmpd / "rec", tmpd / "a", workers=0, validate=False)
        rows.append(("shard, 1 core, no validation (640x480 PNG in)", n / s_off, "frames/s"))
        s_on, _ = shard_seconds(tmpd / "rec", tmpd / "b", workers=0, validate=True)
        rows.append(("shard, 1 core, with validation", n / s_on, "frames/s"))

        s_local, rep = shard_seconds(tmpd / "rec", tmpd / "local", workers=2, validate=False)
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t
        s_ray, rep_ray = shard_seconds(
            tmpd / "rec", tmpd / "ray", workers=2, validate=False, engine="ray"
        )
        ray.shutdown()
        assert rep.frames_written == rep_ray.frames_written == n  # type: ignore[attr-defined]
        rows.append(("baseline: local engine, 2 processes (spawn included)", n / s_local, "frames/s"))  # fmt: skip
        rows.append(("ray engine, 2 actors (actor start included)", n / s_ray, "frames/s"))
        rows.append(("local Ray start (ray.init, 2 CPUs)", ray_start, "s"))

        from kartdata.manifest import Manifest

        m = Manifest.load(str(tmpd / "a"))
        per_frame = m.bytes / m.frames
        rows.append(("dataset bytes per frame (synthetic, 320x240 q90, gzip)", per_frame, "B"))
        rows.append(("JPEG decode 320x240, 1 core", jpeg_decode_per_core(), "frames/s"))
        rows.append(("loader end to end, 1 core (balanced, augmented)", loader_per_core(str(tmpd / "a")), "ex/s"))  # fmt: skip
        rate, mflops = pilotnet_step()
        rows.append(("PilotNet train step, batch 64, 1 core", rate, "ex/s"))
        rows.append(("PilotNet forward MFLOPs per example", mflops, "MFLOP"))

    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"{n} frames ({args.sessions} sessions x {args.frames}, 640x480 PNG)")
    for name, value, unit in rows:
        print(f"{name:58s} {value:10.1f} {unit}")
    print(f"ratio ray / local engine (throughput): {s_local / s_ray:.2f}")


if __name__ == "__main__":
    main()
