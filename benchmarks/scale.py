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

With ``--dataset-frames N`` (e.g. 11000000) it measures the dataset path at
size instead (issue 15): a base dataset of ~1 GB is written by kartkit's own
shard writer (real TFRecord shards of real 320x240 JPEG frames — one frame's
bytes repeated — with real Parquet index sidecars and a manifest), then copied
under distinct shard names and session keys until it holds N frames: each
copy's shards are HARD LINKS to the base's (same bytes, so a ~100 GB logical
dataset costs ~1 GB of disk), each copy's index sidecars are rewritten by
kartkit with the copy's session keys. The records inside a linked shard still
carry the base's session keys, so the loader pass reads with ``split="all"``.
Against a 16,000-frame dataset built the same way in the same run, it reports
``frames()`` (all columns / two), ``kartdata info``, ``kartdata verify`` with
and without re-hashing, ``prepare`` and a time-limited loader pass; each in a
fresh process, with its peak RSS.

    .venv/bin/python benchmarks/scale.py --dataset-frames 11000000 --work /tmp/kartscale
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


# ---------------------------------------------------------------------------
# The dataset path at 10 M frames (issue 15)
# ---------------------------------------------------------------------------

SESSION_FRAMES = 1000


def build_base(out: Path, sessions: int, seed: int = 0) -> None:
    """``sessions`` x 1000 frames written by kartkit's shard writer: real
    examples (one real JPEG's bytes), real index rows, a real manifest."""
    from kartdata import synth
    from kartdata.index import index_row
    from kartdata.manifest import Encoding, Manifest, SessionInfo
    from kartdata.schema import (
        CONTEXT_LEN,
        PAD_SIZE,
        ClassThresholds,
        FrameExample,
        encode_example,
        stratum_name,
    )
    from kartdata.shard.files import StratumWriters
    from kartdata.shard.histogram import HistogramCounter, merge_histograms
    from kartdata.shard.images import encode_stored_image

    enc = Encoding()
    # 8 distinct frames of ~9 KB (a render with a little noise), cycled: one
    # image repeated would deflate to nothing across records (gzip's 32 KB
    # window); 8 x 9 KB apart it cannot, so shard bytes are those of real frames
    noise = np.random.default_rng(99)
    jpegs = []
    for k in range(8):
        img = synth.render(0.1 * k - 0.4, k, 640, 480, 3).astype(float)
        img = np.clip(img + noise.normal(0, 2.5, img.shape), 0, 255).astype(np.uint8)
        jpegs.append(encode_stored_image(img, enc))
    classes = ClassThresholds()
    rng = np.random.default_rng(seed)
    (out / "shards").mkdir(parents=True)
    manifest = Manifest(encoding=enc, classes=classes, generation=1)
    hist: dict = {}
    with StratumWriters(
        str(out), generation=1, worker=0, compression="GZIP", target_bytes=128 << 20
    ) as writers:
        for s in range(sessions):
            key = f"bench-{seed}-{s:05d}"
            track = ("luigi_raceway", "moo_moo_farm", "koopa_beach")[s % 3]
            xs = np.clip(np.cumsum(rng.normal(0, 0.08, SESSION_FRAMES)) * 0.2, -1, 1)
            strata: dict[str, int] = {}
            counter = HistogramCounter()
            for i, x in enumerate(xs):
                pad = [float(x), 0.0] + [1.0 if b == 7 else 0.0 for b in range(PAD_SIZE - 2)]
                recovery = (i // 100) % 5 == 4
                stratum = stratum_name(classes.classify(pad[0]), recovery)
                tags = ("recovery",) if recovery else ()
                t_ns = 10**9 + i * 66_666_667
                jpeg, h, w = jpegs[i % len(jpegs)]
                record = encode_example(
                    FrameExample(jpeg, h, w, key, track, i, t_ns, tuple(pad),
                                 tuple(pad) * CONTEXT_LEN, stratum, tags)
                )  # fmt: skip
                writers.write(
                    stratum, record, index_row(key, track, i, t_ns, pad, stratum, tags, "")
                )
                strata[stratum] = strata.get(stratum, 0) + 1
                counter.add(pad)
            hist = merge_histograms(hist, counter.to_json())
            manifest.sessions.append(
                SessionInfo(key, "native", f"/synthetic/{key}", "mk64", track, "bench", 640, 480,
                            15.0, (), SESSION_FRAMES, SESSION_FRAMES, {}, strata, 1)
            )  # fmt: skip
    manifest.shards = sorted(writers.finished, key=lambda x: x.path)
    manifest.histogram = hist
    manifest.save(str(out))


def replicate(base: Path, out: Path, copies: int) -> None:
    """``copies`` copies of ``base`` in one dataset: shards hard-linked under
    new names, index sidecars rewritten with the copy's session keys."""
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from kartdata.index import index_path_for, write_index_table
    from kartdata.manifest import Manifest
    from kartdata.shard.files import shard_name

    m = Manifest.load(str(base))
    (out / "shards").mkdir(parents=True)
    big = Manifest(encoding=m.encoding, classes=m.classes, generation=copies)
    tables = {s.path: pq.read_table(base / s.index) for s in m.shards}
    for c in range(copies):
        seq: dict[str, int] = {}
        for s in m.shards:
            n = seq[s.stratum] = seq.get(s.stratum, -1) + 1
            rel = shard_name(s.stratum, c + 1, 0, n, m.encoding.compression)
            os.link(base / s.path, out / rel)
            t = tables[s.path]
            col = t.column("session").combine_chunks()
            renamed = pa.DictionaryArray.from_arrays(
                col.indices, pa.array([f"{k}-c{c:04d}" for k in col.dictionary.to_pylist()])
            )
            t = t.set_column(t.schema.get_field_index("session"), "session", renamed)
            write_index_table(str(out / index_path_for(rel)), t)
            big.shards.append(
                dataclasses.replace(s, path=rel, index=index_path_for(rel), generation=c + 1)
            )
        big.sessions += [
            dataclasses.replace(x, key=f"{x.key}-c{c:04d}", generation=c + 1) for x in m.sessions
        ]
    big.histogram = m.histogram
    big.save(str(out))


_CHILD = r"""
import json, resource, sys, time
kind, ds = sys.argv[1], sys.argv[2]
import pandas, pyarrow, pyarrow.parquet  # imports are not what is measured
import kartdata
from kartdata import views
t0 = time.perf_counter()
cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
out = {}
if kind == "frames_all":
    df = kartdata.frames(ds)
    out["rows"] = len(df)
    out["bytes_per_row"] = float(df.memory_usage(deep=True).sum()) / max(len(df), 1)
elif kind == "frames_two":
    out["rows"] = len(kartdata.frames(ds, columns=["session", "x"]))
elif kind == "prepare":
    from kartdata.loader import prepare
    out["rows"] = prepare(ds, split="all").frames
elif kind == "cli":
    from kartdata.cli import app
    try:
        app(sys.argv[3:] + [ds], standalone_mode=False)
    except SystemExit as e:
        assert not e.code, e.code
elif kind == "loader":
    limit = float(sys.argv[3])
    stream = kartdata.load(ds, split="all", batch_size=64, augment=False, shuffle=True, seed=1)
    n, marks = 0, []
    t1 = time.perf_counter()
    for x, y in stream:
        n += int(y.shape[0])
        marks.append((time.perf_counter() - t1, n))
        if marks[-1][0] > limit:
            break
    def rate(a, b):
        sel = [m for m in marks if a <= m[0] <= b]
        return (sel[-1][1] - sel[0][1]) / (sel[-1][0] - sel[0][0])
    out.update(rows=n, first10=rate(0, 10), last10=rate(limit - 10, limit + 1))
out["seconds"] = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_SELF)
out["cpu_s"] = use.ru_utime + use.ru_stime - cpu0
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("\n" + json.dumps(out))
"""


def _child(kind: str, ds: Path, *extra: str) -> dict:
    """Run one measurement in a fresh process: its time (after imports) and peak RSS."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(ds), *extra],
        capture_output=True, text=True, timeout=3600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli(ds: Path, *args: str) -> dict:
    """A ``kartdata`` command, timed from after the imports, in a fresh process."""
    return _child("cli", ds, *args)


def as_csv_index(src: Path, dst: Path) -> None:
    """A copy of ``src`` as kartkit wrote datasets before the Parquet index
    (gzip CSV sidecars, manifest version 1): the baseline of the index change."""
    import csv
    import gzip
    import json

    import pyarrow.parquet as pq

    from kartdata.index import INDEX_COLUMNS

    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for s in manifest["shards"]:
        table = pq.read_table(dst / s["index"])
        (dst / s["index"]).unlink()
        s["index"] = s["index"].replace(".index.parquet", ".index.csv.gz")
        with gzip.open(dst / s["index"], "wt", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(INDEX_COLUMNS)
            w.writerows([row[c] for c in INDEX_COLUMNS] for row in table.to_pylist())
    manifest["version"] = 1
    (dst / "manifest.json").write_text(json.dumps(manifest))


def dataset_scale(args: argparse.Namespace) -> None:
    import datetime
    import platform

    from kartdata.manifest import Manifest

    work = Path(args.work or tempfile.mkdtemp(prefix="kartscale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        build_base(work / "small", 16, seed=1)
        small_build = time.perf_counter() - t
        t = time.perf_counter()
        build_base(work / "base", 110, seed=2)
        base_build = time.perf_counter() - t
        base = Manifest.load(str(work / "base"))
        copies = max(1, -(-args.dataset_frames // base.frames))
        t = time.perf_counter()
        replicate(work / "base", work / "big", copies)
        big_build = time.perf_counter() - t
        big = Manifest.load(str(work / "big"))
        sets = {"16k": work / "small", "1GB": work / "base", "big": work / "big"}
        sizes = {k: Manifest.load(str(v)) for k, v in sets.items()}
        print(f"machine: {platform.node()} {os.cpu_count()} cores, {datetime.date.today()}, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"built: 16k in {small_build:.0f} s, base in {base_build:.0f} s, "
              f"{copies} linked copies in {big_build:.0f} s")  # fmt: skip
        for k, m in sizes.items():
            print(f"  {k:4s}: {m.frames:>10,d} frames, {len(m.shards):5d} shards, "
                  f"{len(m.sessions):6d} sessions, {m.bytes / 1e9:7.2f} GB logical")  # fmt: skip
        du = sum(p.stat().st_size for p in (work / "base").rglob("*") if p.is_file())
        du += sum(p.stat().st_size for p in (work / "big").rglob("*.parquet"))
        print(f"  real disk (base shards + all sidecars): {du / 1e9:.2f} GB")
        rows = []
        for label, fn in (
            ("frames() all columns", lambda d: _child("frames_all", d)),
            ("frames() two columns", lambda d: _child("frames_two", d)),
            ("prepare()", lambda d: _child("prepare", d)),
            ("kartdata info", lambda d: _cli(d, "info")),
            ("kartdata verify --no-hash", lambda d: _cli(d, "verify", "--no-hash")),
        ):
            small, large = fn(sets["16k"]), fn(sets["big"])
            ratio = large["seconds"] / small["seconds"]
            per = ratio / (big.frames / sizes["16k"].frames)
            rows.append((label, small, large, ratio, per))
        as_csv_index(sets["16k"], work / "small-csv")
        old = _child("frames_all", work / "small-csv")
        new = rows[0][1]
        print(f"frames() on 16k, gzip CSV sidecars (before): {old['seconds']:.2f} s, "
              f"{old['bytes_per_row']:.0f} B/row; Parquet: {new['seconds']:.2f} s, "
              f"{new['bytes_per_row']:.0f} B/row (at 11 M: {rows[0][2]['bytes_per_row']:.0f})")  # fmt: skip
        print(f"{'':28s} {'16k s':>8s} {'cpu s':>6s} {'MB':>6s} {'big s':>8s} {'cpu s':>6s} "
              f"{'MB':>6s}  {'time ratio':>10s} {'ratio/size ratio':>16s}")  # fmt: skip
        for label, a, b, r, per in rows:
            print(f"{label:28s} {a['seconds']:8.2f} {a['cpu_s']:6.2f} {a['rss_mb']:6.0f} "
                  f"{b['seconds']:8.2f} {b['cpu_s']:6.2f} {b['rss_mb']:6.0f}  {r:10.1f} "
                  f"{per:16.4f}")  # fmt: skip
        if args.index_only:
            return
        for k in ("16k", "1GB"):
            v = _cli(sets[k], "verify")
            rate = sizes[k].bytes / 1e6 / v["seconds"]
            print(f"kartdata verify (re-hash) {k}: {v['seconds']:.1f} s, {rate:.0f} MB/s, "
                  f"{v['rss_mb']:.0f} MB")  # fmt: skip
        for k in ("1GB", "big"):
            r = _child("loader", sets[k], str(args.loader_seconds))
            print(f"loader pass on {k} ({sizes[k].bytes / 1e9:.1f} GB logical), first "
                  f"{args.loader_seconds:.0f} s: {r['rows']} frames, {r['first10']:.0f} frames/s "
                  f"in the first 10 s, {r['last10']:.0f} in the last 10 s, "
                  f"peak RSS {r['rss_mb']:.0f} MB")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if "--dataset-frames" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--dataset-frames", type=int, required=True)
        ap.add_argument("--work", default=None)
        ap.add_argument("--loader-seconds", type=float, default=60.0)
        ap.add_argument("--index-only", action="store_true", help="skip re-hashing and the loader")
        dataset_scale(ap.parse_args())
    else:
        main()
