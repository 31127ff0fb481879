"""Loader speed and memory.

1. Throughput on the same shards: the full pipeline (balance uniform, recovery
   weight 2, augmentation on, 66x200 model input, batches of 64) against a
   decode-only ceiling (interleaved read + parse + JPEG decode, nothing else),
   measured alternately in the same run. Goal: ratio ≥ 0.85.
2. Peak RSS streaming a whole epoch of the full pipeline over a ~1 GB dataset
   and a larger one, each in a fresh process. Goal: flat (ratio ≤ 1.1) and
   < 1.5 GB. The big datasets are the base dataset's shards hard-linked under
   new names into a new manifest: new files to the loader, no disk or sharding
   time spent.

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


def full_pipeline(dataset: str, seed: int | None = None, epoch: int | None = None):  # type: ignore[no-untyped-def]
    import kartdata

    return kartdata.load(
        dataset,
        split="all",
        batch_size=64,
        balance="uniform",
        recovery_weight=2.0,
        augment=True,
        epoch_samples=epoch,
        seed=seed,
    )


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


def rate(ds, limit: int) -> float:  # type: ignore[no-untyped-def]
    """Frames/s over ``limit`` frames, after a warm-up batch (graph build, buffers)."""
    it = iter(ds)
    next(it)
    n, start = 0, time.perf_counter()
    for batch in it:
        n += int(batch[0].shape[0]) if isinstance(batch, tuple) else int(batch.shape[0])
        if n >= limit:
            break
    return n / (time.perf_counter() - start)


def plain_pipeline(dataset: str):  # type: ignore[no-untyped-def]
    """The loader without balance or augmentation: read, decode, preprocess."""
    import kartdata

    return kartdata.load(dataset, split="all", batch_size=64, augment=False, epoch_samples=10**9)


def throughput(dataset: str, frames: int, repeats: int) -> None:
    runs: dict[str, list[float]] = {"ceiling": [], "plain": [], "full": []}
    for _ in range(repeats):
        runs["ceiling"].append(rate(decode_only(dataset).repeat(), frames))
        runs["plain"].append(rate(plain_pipeline(dataset), frames))
        runs["full"].append(rate(full_pipeline(dataset, epoch=10**9), frames))
    med = {k: statistics.median(v) for k, v in runs.items()}
    labels = {
        "ceiling": "decode-only ceiling",
        "plain": "loader, no balance/augment",
        "full": "full pipeline",
    }
    for k, label in labels.items():
        values = ", ".join(f"{v:.0f}" for v in runs[k])
        print(f"{label:<28}{med[k]:8.0f} frames/s  (runs: {values})")
    print(f"ratio full / ceiling: {med['full'] / med['ceiling']:.2f}  (goal >= 0.85)")
    print(f"ratio loader without balance/augment / ceiling: {med['plain'] / med['ceiling']:.2f}")


def stream_epoch(dataset: str) -> None:
    """Child process: one whole epoch of the full pipeline; prints JSON."""
    import resource

    from kartdata.manifest import Manifest

    manifest = Manifest.load(dataset)
    start = time.perf_counter()
    n = sum(int(x.shape[0]) for x, _ in full_pipeline(dataset))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"frames": n, "bytes": manifest.bytes, "seconds": seconds, "peak_rss": peak}
    print(json.dumps(out))


def memory(base: Path, work: Path, sizes_gb: list[float]) -> None:
    results = []
    for gb in sizes_gb:
        ds = replicate(base, work / f"ds-{gb:g}gb", int(gb * 1e9))
        proc = subprocess.run(
            [sys.executable, __file__, "--stream", str(ds)],
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
    ap.add_argument("--stream", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream:
        stream_epoch(args.stream)
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
        throughput(str(base), args.frames * 2, args.repeats)
        if args.gb:
            memory(base, work, args.gb)


if __name__ == "__main__":
    main()
