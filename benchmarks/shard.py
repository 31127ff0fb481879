"""`kartdata shard` against a TensorKart-style preparation, on the same recordings.

Both run as subprocesses on generated TensorKart sessions (640x480 PNG, cached
under /tmp between runs). For each: wall time, frames/s, peak RSS (of the whole
process tree, sampled), bytes per frame; then the ratios. The sharder also runs
at 2N frames to show its memory does not grow with the data, and with each
record compression for the README's trade-off note.

The per-frame floor (issue 15), measured in the same run: the work every frame
needs — libspng decode, the 2x reduce to the storage box, JPEG q90 encode, as
the sharder did them before issue 15 — timed in one process on one core over
the same frames, times the cores. ``shard / floor`` says how much of the
machine the sharder turns into frames; each floor figure is a median over
``--repeat`` passes interleaved with the shard runs, so both see the same load.
On a shared machine the wall-clock ratio moves with the others' load; the
sharder's CPU seconds per frame (its whole process tree, from the kernel's
accounting) against the floor's do not, so both are printed.

Baselines (both written here, as the reference):

- ``tensorkart``: what TensorKart's ``utils.py prepare`` did — skimage ``imread``,
  skimage ``resize`` to 66x200x3 floats, every frame appended to one list,
  ``np.asarray``, ``np.save``;
- ``lean``: the same output made as cheaply as we know (Pillow decode and
  resize, float32 written into a preallocated array) — to show how much of the
  gap is TensorKart's choice of library.

    python benchmarks/shard.py [--frames 5000] [--repeat 1]
    python benchmarks/shard.py --floor [--frames 2000] [--repeat 5]   # shard vs floor only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

CACHE = Path("/tmp/kartkit-bench-shard")
SESSION_FRAMES = 1000

BASELINE = r"""
import sys, csv, numpy as np
from pathlib import Path
kind, out, sessions = sys.argv[1], sys.argv[2], sys.argv[3:]
if kind == "tensorkart":
    from skimage.io import imread
    from skimage.transform import resize
    X, y = [], []
    for s in sessions:
        rows = list(csv.reader(open(Path(s) / "data.csv")))
        y.append(np.array([[float(v) for v in r[1:]] for r in rows]))
        for r in rows:
            X.append(resize(imread(Path(s) / Path(r[0]).name), (66, 200, 3)))
    np.save(out + "/X.npy", np.asarray(X))
    np.save(out + "/y.npy", np.concatenate(y))
else:
    from PIL import Image
    rows = [(Path(s), r) for s in sessions for r in csv.reader(open(Path(s) / "data.csv"))]
    X = np.empty((len(rows), 66, 200, 3), np.float32)
    for i, (s, r) in enumerate(rows):
        with Image.open(s / Path(r[0]).name) as im:
            X[i] = np.asarray(im.convert("RGB").resize((200, 66), Image.Resampling.BILINEAR)) / 255.0
    np.save(out + "/X.npy", X)
    np.save(out + "/y.npy", np.array([[float(v) for v in r[1:]] for _, r in rows]))
"""


FLOOR = r"""
import io, sys, time
from pathlib import Path
import pyspng
from PIL import Image
files = [Path(p) for p in sys.argv[1:]]
t = time.process_time()
for f in files:
    a = pyspng.load(f.read_bytes())
    im = Image.fromarray(a).resize((320, 240), Image.Resampling.BILINEAR, reducing_gap=1.0)
    Image.fromarray(__import__("numpy").asarray(im)).save(
        io.BytesIO(), format="JPEG", quality=90, optimize=True
    )
print((time.process_time() - t) / len(files))
"""
#: Frames the floor is timed on (spread over the sessions).
FLOOR_FRAMES = 400


def floor_run(srcs: list[Path]) -> float:
    """Seconds of one core's CPU per frame for decode + resize + encode (CPU
    time, not wall: a busy machine stretches wall time, not the work)."""
    files = [p for s in srcs for p in sorted(s.glob("img_*.png"))]
    pick = files[:: max(1, len(files) // FLOOR_FRAMES)][:FLOOR_FRAMES]
    out = subprocess.run(
        [sys.executable, "-c", FLOOR, *map(str, pick)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def sessions(frames: int) -> list[Path]:
    """TensorKart sessions of SESSION_FRAMES each, made once and cached."""
    from kartdata import synth

    out = []
    for i in range((frames + SESSION_FRAMES - 1) // SESSION_FRAMES):
        path = CACHE / "recordings" / f"2017-01-05_12-00-{i:02d}"
        if not (path / ".complete").exists():
            shutil.rmtree(path, ignore_errors=True)
            print(f"generating {path} …", file=sys.stderr, flush=True)
            synth.make_tensorkart(path, SESSION_FRAMES, seed=i)
            (path / ".complete").touch()
        out.append(path)
    return out


#: CPU seconds (user + system) the last :func:`run`'s process tree used.
last_cpu = 0.0


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of the process tree, sampled every 50 ms;
    its CPU seconds go in :data:`last_cpu`."""
    global last_cpu
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, peak


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


READER = r"""
import sys, time, json
import tensorflow as tf
from kartdata.schema import feature_spec
ds, comp = sys.argv[1], sys.argv[2]
m = json.load(open(ds + "/manifest.json"))
files = [ds + "/" + s["path"] for s in m["shards"]]
spec = feature_spec()
def decode(x):
    return tf.io.decode_jpeg(tf.io.parse_single_example(x, spec)["image"])
data = tf.data.TFRecordDataset(files, compression_type=comp, num_parallel_reads=len(files))
data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(64).prefetch(2)
t = time.perf_counter()
n = sum(int(b.shape[0]) for b in data)
print(n / (time.perf_counter() - t))
"""


def read_speed(dataset: Path, compression: str) -> float:
    """Records/s of tf.data reading the shards and decoding every JPEG."""
    out = subprocess.run(
        [sys.executable, "-c", READER, str(dataset), compression],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def store_verdicts(srcs: list[Path]) -> None:
    """What `kartdata validate` leaves for the sharder, made once and cached."""
    code = (
        "import sys; from kartdata.sources import open_source; "
        "from kartdata.validate.verdicts import frame_verdicts; "
        "[frame_verdicts(open_source(p)) for p in sys.argv[1:]]"
    )
    env = {**os.environ, "KARTKIT_CACHE": str(CACHE / "verdicts")}
    print("validating (once, cached) …", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", code, *map(str, srcs)], env=env, check=True)


def shard_run(
    srcs: list[Path], frames: int, *args: str, inline: bool = False, read: str | None = None
) -> dict[str, float]:
    """``inline``: no stored verdicts, so the sharder validates as it goes;
    ``read``: also time tf.data reading the result with that compression."""
    out = CACHE / "dataset"
    shutil.rmtree(out, ignore_errors=True)
    cache = CACHE / ("verdicts-inline" if inline else "verdicts")
    if inline:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "KARTKIT_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "kartdata.cli", "shard", *map(str, srcs), "--out", str(out)]
    seconds, rss = run([*cmd, "--no-progress", *args], env)
    m = json.loads((out / "manifest.json").read_text())
    written = m["frames"]
    assert written + sum(m["excluded"].values()) == frames, (written, frames)
    r = {
        "seconds": seconds,
        "fps": frames / seconds,
        "cpu_per_frame": last_cpu / frames,
        "rss": rss,
        "bytes_per_frame": m["bytes"] / written,
    }
    if read is not None:
        r["read_fps"] = read_speed(out, read)
    return r


def baseline_run(kind: str, srcs: list[Path], frames: int) -> dict[str, float]:
    out = CACHE / f"baseline-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds, rss = run([sys.executable, "-c", BASELINE, kind, str(out), *map(str, srcs)])
    size = tree_bytes(out)
    shutil.rmtree(out)
    return {
        "seconds": seconds,
        "fps": frames / seconds,
        "rss": rss,
        "bytes_per_frame": size / frames,
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


class Results(dict[str, dict[str, float]]):
    """Prints each row as it is measured (a full run takes minutes)."""

    def __setitem__(self, name: str, r: dict[str, float]) -> None:
        super().__setitem__(name, r)
        print(line(name, r), flush=True)


def line(name: str, r: dict[str, float]) -> str:
    return (
        f"{name:<34} {r['fps']:>8.0f} frames/s  {r['seconds']:>7.1f} s  "
        f"peak RSS {r['rss'] / 2**20:>7.0f} MiB  {r['bytes_per_frame'] / 1e3:>8.1f} KB/frame"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; medians are printed")
    ap.add_argument("--skip-2n", action="store_true", help="skip the 2N memory run")
    ap.add_argument(
        "--read", action="store_true", help="only: write and read back gzip vs none (tf.data)"
    )
    ap.add_argument(
        "--floor", action="store_true", help="only: the sharder against the per-frame floor"
    )
    a = ap.parse_args()
    if a.floor:
        floor_report(a.frames, a.repeat)
        return
    if a.read:
        srcs = sessions(a.frames)
        n = len(srcs) * SESSION_FRAMES
        store_verdicts(srcs)
        for comp in ("GZIP", ""):
            args = ("--compression", comp.lower() or "none")
            r = median([shard_run(srcs, n, *args, read=comp) for _ in range(a.repeat)])
            print(
                f"{comp or 'none':<5} write {r['fps']:>6.0f} frames/s, "
                f"{r['bytes_per_frame'] / 1e3:.2f} KB/frame, "
                f"tf.data read + JPEG decode {r['read_fps']:>6.0f} frames/s",
                flush=True,
            )
        return
    srcs, srcs2 = sessions(a.frames), sessions(2 * a.frames)
    n = len(srcs) * SESSION_FRAMES
    print(f"{n} TensorKart frames (640x480 PNG) in {len(srcs)} sessions; {os.cpu_count()} cores")
    store_verdicts(srcs2)
    res = Results()
    rep = range(a.repeat)
    main_run = "shard (gzip, verdicts stored)"
    res[main_run] = median([shard_run(srcs, n) for _ in rep])
    res["shard (none, verdicts stored)"] = median(
        [shard_run(srcs, n, "--compression", "none") for _ in rep]
    )
    res["shard (zlib, verdicts stored)"] = median(
        [shard_run(srcs, n, "--compression", "zlib") for _ in rep]
    )
    res["shard (gzip, --no-validate)"] = median([shard_run(srcs, n, "--no-validate") for _ in rep])
    res["shard (gzip, validating inline)"] = median([shard_run(srcs, n, inline=True) for _ in rep])
    big_run = f"shard 2N={2 * n} (gzip, verdicts stored)"
    if not a.skip_2n:
        res[big_run] = median([shard_run(srcs2, 2 * n) for _ in rep])
    res["baseline tensorkart (skimage)"] = median(
        [baseline_run("tensorkart", srcs, n) for _ in rep]
    )
    res["baseline lean (Pillow, float32)"] = median([baseline_run("lean", srcs, n) for _ in rep])
    for ours_name in (main_run, "shard (gzip, validating inline)"):
        ours = res[ours_name]
        for base in ("baseline tensorkart (skimage)", "baseline lean (Pillow, float32)"):
            b = res[base]
            print(
                f"{ours_name} vs {base}: {ours['fps'] / b['fps']:.1f}x faster, "
                f"{b['rss'] / ours['rss']:.1f}x less peak RSS, "
                f"{b['bytes_per_frame'] / ours['bytes_per_frame']:.0f}x fewer bytes"
            )
    if not a.skip_2n:
        print(f"peak RSS at 2N / at N: {res[big_run]['rss'] / res[main_run]['rss']:.2f}")
    z = res["shard (none, verdicts stored)"]
    for comp in ("gzip", "zlib"):
        g = res[f"shard ({comp}, verdicts stored)"]
        print(
            f"{comp} vs none: {g['bytes_per_frame'] / z['bytes_per_frame']:.3f}x the bytes, "
            f"{g['fps'] / z['fps']:.2f}x the speed"
        )


def floor_report(frames: int, repeat: int) -> None:
    """Shard runs (verdicts stored, and validating inline) interleaved with
    floor passes; medians and the ratios."""
    srcs = sessions(frames)
    n = len(srcs) * SESSION_FRAMES
    cores = os.cpu_count() or 1
    print(f"{n} TensorKart frames (640x480 PNG) in {len(srcs)} sessions; {cores} cores")
    store_verdicts(srcs)
    floors: list[float] = []
    stored: list[dict[str, float]] = []
    inline: list[dict[str, float]] = []
    for _ in range(repeat):
        floors.append(floor_run(srcs))
        stored.append(shard_run(srcs, n))
        inline.append(shard_run(srcs, n, inline=True))
    per_frame = statistics.median(floors)
    floor_fps = cores / per_frame
    spread = (min(floors) * 1e3, max(floors) * 1e3)
    print(
        f"floor: {per_frame * 1e3:.2f} ms/frame on one core (CPU time; range "
        f"{spread[0]:.2f}–{spread[1]:.2f} over {repeat}) x {cores} cores = {floor_fps:.0f} frames/s"
    )
    for name, runs in (("verdicts stored", stored), ("validating inline", inline)):
        r = median(runs)
        fps = [x["fps"] for x in runs]
        print(
            f"shard ({name}): {r['fps']:.0f} frames/s (range {min(fps):.0f}–{max(fps):.0f}), "
            f"shard / floor = {r['fps'] / floor_fps:.2f}; CPU {r['cpu_per_frame'] * 1e3:.2f} "
            f"ms/frame, floor / shard CPU = {per_frame / r['cpu_per_frame']:.2f}"
        )


if __name__ == "__main__":
    main()
