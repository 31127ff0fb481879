"""Loader speed and memory.

1. Throughput on the same shards, measured alternately in the same run (66x200
   model input, batches of 64):

   - the decode-only ceiling: interleaved read + parse + JPEG decode, nothing else;
   - the loader as the trainer uses it: balance uniform, recovery weight 2,
     augmentation on, ``device_stage=True`` (uint8 out, labels mirrored in the
     loader; preprocessing, the images' mirror and the photometric
     augmentation run in the train step). Goal: ≥ 0.85 of the ceiling;
   - the all-in-loader full pipeline (the same, but preprocessing and all
     augmentation in the loader), for comparison;
   - the plain loader (no balance, no augmentation, preprocessing in the loader);
   - the device stage itself, compiled, on a fixed batch of the loader's: what
     a trainer without an accelerator pays for it per frame, on this CPU.
2. Peak RSS streaming a whole epoch of the loader (device mode by default, as
   the trainer uses it) over a ~1 GB dataset and a larger one, each in a fresh
   process. Goal: flat (ratio ≤ 1.1) and < 1.5 GB. The big datasets are the
   base dataset's shards hard-linked under new names into a new manifest: new
   files to the loader, no disk or sharding time spent.

    .venv/bin/python benchmarks/loader.py [--frames 3000] [--gb 1 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_base(root: Path, frames: int) -> Path:
    from kartdata import synth
    from kartdata.shard import ShardConfig, shard

    per = 300
    for i in range((frames + per - 1) // per):
        synth.make_native(
            root / "rec" / f"s{i}",
            per,
            seed=i,
            width=320,
            height=240,
            track=f"track{i % 3}",
            recovery_share=0.3 if i % 2 else 0.0,
        )
    out = root / "base"
    shard([root / "rec"], out, ShardConfig(workers=2, validate=False, target_shard_bytes=4 << 20))
    return out


def replicate(base: Path, out: Path, target_bytes: int) -> Path:
    """``base``'s shards hard-linked under new names until ``target_bytes``."""
    from kartdata.manifest import Manifest

    manifest = Manifest.load(str(base))
    copies = max(1, round(target_bytes / manifest.bytes))
    (out / "shards").mkdir(parents=True, exist_ok=True)
    shards = []
    for c in range(copies):
        for s in manifest.shards:
            path = s.path.replace("shards/", f"shards/c{c:04d}-")
            index = s.index.replace("shards/", f"shards/c{c:04d}-")
            os.link(base / s.path, out / path)
            os.link(base / s.index, out / index)
            shards.append(replace(s, path=path, index=index))
    sessions = [
        replace(
            s,
            frames_written=s.frames_written * copies,
            strata={k: v * copies for k, v in s.strata.items()},
        )
        for s in manifest.sessions
    ]
    replicated = replace(manifest, shards=shards, sessions=sessions)
    replicated.save(str(out))
    return out


def full_config(device: bool, epoch: int | None = None):  # type: ignore[no-untyped-def]
    from kartdata.loader import LoadConfig
    from kartdata.split import SplitConfig

    # The train split holding every session: augmentation and shuffling only
    # ever happen in ``train`` (split "all" would measure neither).
    return LoadConfig(
        split="train",
        splits=SplitConfig(val_fraction=0.0),
        batch_size=64,
        balance="uniform",
        recovery_weight=2.0,
        augment=True,
        epoch_samples=epoch,
        device_stage=device,
    )


def full_pipeline(dataset: str, device: bool = False, epoch: int | None = None):  # type: ignore[no-untyped-def]
    """Balance + recovery weight + augmentation; with ``device`` as the
    trainer loads (uint8, labels mirrored), else everything in the loader."""
    import kartdata

    return kartdata.load(dataset, full_config(device, epoch))


def decode_only(dataset: str):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    from kartdata.manifest import Manifest
    from kartdata.schema import feature_spec

    manifest = Manifest.load(dataset)
    paths = [os.path.join(dataset, s.path) for s in manifest.shards]
    spec = {"image": feature_spec()["image"]}
    ds = tf.data.Dataset.from_tensor_slices(paths).interleave(
        lambda p: tf.data.TFRecordDataset(p, compression_type=manifest.encoding.compression),
        cycle_length=4,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    ds = ds.map(
        lambda r: tf.io.decode_jpeg(tf.io.parse_single_example(r, spec)["image"], channels=3),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    return ds.batch(64).prefetch(tf.data.AUTOTUNE)


def rate(ds, limit: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(frames/s, CPU ms per frame of this process, all threads) over ``limit``
    frames, after a warm-up batch (graph build, buffers). On a shared machine
    the CPU time per frame moves less with other jobs' load than the rate."""
    it = iter(ds)
    next(it)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    for batch in it:
        # (images, targets) batches count by their targets: in device mode the
        # images are a dict of image and mirror flag.
        n += int(batch[1].shape[0]) if isinstance(batch, tuple) else int(batch.shape[0])
        if n >= limit:
            break
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e3


def plain_pipeline(dataset: str):  # type: ignore[no-untyped-def]
    """The loader without balance or augmentation: read, decode, preprocess."""
    import kartdata

    return kartdata.load(dataset, split="all", batch_size=64, augment=False, epoch_samples=10**9)


def device_stage_cost(dataset: str, repeats: int, calls: int = 20) -> tuple[float, float]:
    """CPU ms per frame of the compiled device stage (preprocess + mirror +
    contrast, brightness, shift) and of ``preprocess`` alone, on one fixed batch of 64
    uint8 frames from the trainer's loader: medians over ``repeats`` rounds of
    ``calls`` calls."""
    import tensorflow as tf

    import kartdata.preprocess
    from kartdata.loader import device_stage

    cfg = full_config(True, 10**9)
    inputs = next(iter(full_pipeline(dataset, device=True, epoch=10**9)))[0]
    images = inputs["image"]
    seed = tf.constant([1, 2], tf.int64)
    stage = tf.function(device_stage(cfg))
    only = tf.function(lambda x: kartdata.preprocess.preprocess(x, cfg.input))
    per: dict[str, list[float]] = {"stage": [], "preprocess": []}
    for _ in range(repeats):
        for name, call in (
            ("stage", lambda: stage(inputs, seed)),
            ("preprocess", lambda: only(images)),
        ):
            call().numpy()  # trace, warm
            start = time.perf_counter()
            for _ in range(calls):
                call().numpy()
            per[name].append((time.perf_counter() - start) / calls / int(images.shape[0]) * 1e3)
    return statistics.median(per["stage"]), statistics.median(per["preprocess"])


def throughput(dataset: str, frames: int, repeats: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {
        "ceiling": [],
        "device": [],
        "full": [],
        "plain": [],
    }
    for _ in range(repeats):
        runs["ceiling"].append(rate(decode_only(dataset).repeat(), frames))
        runs["device"].append(rate(full_pipeline(dataset, device=True, epoch=10**9), frames))
        runs["full"].append(rate(full_pipeline(dataset, epoch=10**9), frames))
        runs["plain"].append(rate(plain_pipeline(dataset), frames))
    med = {k: statistics.median(r for r, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    labels = {
        "ceiling": "(a) decode-only ceiling",
        "device": "(b) trainer's loader, device",
        "full": "(c) all-in-loader pipeline",
        "plain": "(d) loader, no balance/aug",
    }
    for k, label in labels.items():
        values = ", ".join(f"{r:.0f}" for r, _ in runs[k])
        print(f"{label:<32}{med[k]:8.0f} frames/s  {cpu[k]:.3f} CPU ms/frame  (runs: {values})")

    def ratios(k: str) -> str:
        return f"{med[k] / med['ceiling']:.2f} (frames/s); {cpu['ceiling'] / cpu[k]:.2f} (CPU per frame)"

    print(
        f"ratio (b) trainer's loader / ceiling: {ratios('device')}  (goal >= 0.85; balance + "
        "recovery weight + the labels' mirror in the loader; preprocessing, the images' mirror "
        "and photometric augmentation in the train step)"
    )
    print(f"ratio (c) all-in-loader pipeline / ceiling: {ratios('full')}")
    print(f"ratio (d) loader without balance/augment / ceiling: {ratios('plain')}")
    stage, only = device_stage_cost(dataset, repeats)
    print(
        f"(e) device stage on this CPU, compiled, batch of 64: {stage:.3f} ms/frame "
        f"(preprocess alone {only:.3f}); a decode-only ceiling frame costs "
        f"{1e3 / med['ceiling']:.3f} ms of wall time here"
    )


def stream_epoch(dataset: str, device: bool) -> None:
    """Child process: one whole epoch of the full pipeline; prints JSON."""
    import resource

    from kartdata.manifest import Manifest

    manifest = Manifest.load(dataset)
    start = time.perf_counter()
    n = sum(int(y.shape[0]) for _, y in full_pipeline(dataset, device=device))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"frames": n, "bytes": manifest.bytes, "seconds": seconds, "peak_rss": peak}
    print(json.dumps(out))


def memory(base: Path, work: Path, sizes_gb: list[float], mode: str) -> None:
    print(
        f"peak RSS, {mode} mode ({'uint8 batches' if mode == 'device' else 'all in the loader'}):"
    )
    results = []
    for gb in sizes_gb:
        ds = replicate(base, work / f"ds-{gb:g}gb", int(gb * 1e9))
        proc = subprocess.run(
            [sys.executable, __file__, "--stream", str(ds), "--memory-mode", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['bytes'] / 1e9:5.2f} GB, {r['frames']} frames: peak RSS "
            f"{r['peak_rss'] / 2**20:6.0f} MiB, {r['frames'] / r['seconds']:.0f} frames/s, "
            f"{r['seconds']:.0f} s"
        )
    if len(results) > 1:
        ratio = results[-1]["peak_rss"] / results[0]["peak_rss"]
        print(f"peak RSS ratio largest / smallest: {ratio:.2f}  (goal <= 1.1, and < 1.5 GB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=3000, help="frames in the base dataset")
    ap.add_argument("--gb", type=float, nargs="*", default=[1.0, 4.0], help="memory sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--base", type=Path, help="reuse this base dataset instead of making one")
    ap.add_argument(
        "--memory-mode",
        choices=("device", "full"),
        default="device",
        help="pipeline whose peak RSS is measured: as the trainer loads (device) or all-in-loader",
    )
    ap.add_argument("--stream", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream:
        stream_epoch(args.stream, args.memory_mode == "device")
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        base = args.base or make_base(work, args.frames)
        from kartdata.manifest import Manifest

        m = Manifest.load(str(base))
        print(
            f"machine: {os.cpu_count()} cores; base dataset {m.frames} frames at 320x240, "
            f"{m.bytes / 1e6:.0f} MB in {len(m.shards)} shards "
            f"({time.perf_counter() - started:.0f} s to make)"
        )
        if args.repeats > 0:  # --repeats 0: memory only
            throughput(str(base), args.frames * 2, args.repeats)
        if args.gb:
            memory(base, work, args.gb, args.memory_mode)


if __name__ == "__main__":
    main()
