"""Validation speed on 640x480 PNG sessions against the decode ceiling.

Baselines (same run, same files): decoding every frame and nothing else, on one
core — with Pillow, and with libspng (pyspng), the decoder validate uses. No
per-frame check can beat the libspng figure per core. Then the cost of each
stage per frame, and ``analyse`` end to end with one worker and with one worker
per core.

Every figure is measured once per round, the rounds interleave all of them (so
that a burst of load from other jobs hits a baseline and the thing compared
with it alike), and the medians over rounds are printed. Each is printed as
CPU ms/frame (this process and its finished worker processes: what the work
costs, whatever else runs) and as wall-clock frames/s (what a user waits, which
on a shared machine mostly measures the other jobs).

    .venv/bin/python benchmarks/validate.py [--frames 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from kartdata import synth
from kartdata.sources import open_source
from kartdata.sources.base import decode_image
from kartdata.validate import ValidateConfig, analyse
from kartdata.validate import desktop as dk
from kartdata.validate import features as ft
from kartdata.validate.features import default_workers


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    t, c = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - t, _cpu() - c


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _each(fn: Callable[[bytes], object], items: list[bytes]) -> None:
    """``fn`` on every item, keeping no result: holding every decoded frame
    would measure page faults, not decoding."""
    for item in items:
        fn(item)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cores = default_workers()
    with tempfile.TemporaryDirectory() as d, threadpool_limits(1, user_api="blas"):
        path = synth.make_native(Path(d) / "s", args.frames, width=640, height=480)
        frames = list(open_source(path).frames())
        n = len(frames)
        data = [Path(f.where).read_bytes() for f in frames]
        # A few decoded frames, cycled: the pipeline samples a frame it has just
        # decoded (in cache), and a parent holding every decoded frame would make
        # each fork of the workers copy a gigabyte of page tables.
        images = [decode_image(b, "", 0) for b in data[:8]]
        buf = np.empty((n, *ft.SAMPLE, 3), np.uint8)

        def describe_all() -> None:
            for a in range(0, n, ft.BATCH):
                ft.describe(buf[a : a + ft.BATCH])

        feats = ft._features(
            [
                (f.index, lambda b=b: decode_image(b, "", 0))
                for f, b in zip(frames, data, strict=True)
            ]
        )[0]
        blocks = [dk.SessionBlocks(feats.blocks, np.ones(n, bool))]
        desktop_cfg = ValidateConfig().desktop
        cases: dict[str, Callable[[], object]] = {
            "Pillow decode": lambda: _each(_pillow, data),
            "libspng decode": lambda: _each(lambda b: decode_image(b, "", 0), data),
            "sample": lambda: [ft.sample(images[k % len(images)], buf[k]) for k in range(n)],
            "features": describe_all,
            "desktop": lambda: dk.detect(blocks, desktop_cfg),
            "analyse 1": lambda: analyse([open_source(path)], ValidateConfig(workers=1)),
            "analyse N": lambda: analyse([open_source(path)], ValidateConfig(workers=cores)),
        }
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                runs[name].append(_timed(fn))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    ms = 1e3 / n

    def row(label: str, key: str, note: str = "") -> None:
        print(
            f"  {label:34s} {cpu[key] * ms:6.3f} ms/frame CPU  {n / wall[key]:6.0f} frames/s wall"
            + note
        )

    spng = "libspng decode"
    print(f"frames: {n} 640x480 PNG; medians of {args.rounds} interleaved rounds")
    print("baselines, decode only, 1 core:")
    row("Pillow", "Pillow decode")
    row("libspng (pyspng)", spng)
    print("stages, 1 core:")
    row("decode (libspng)", spng)
    row(f"sample {ft.SAMPLE[0]}x{ft.SAMPLE[1]}", "sample")
    row(f"features (batches of {ft.BATCH})", "features")
    row(f"desktop scoring, both rounds ({cores} thr)", "desktop")
    print("analyse, all checks (CPU: parent + workers):")
    for label, key in (("1 worker", "analyse 1"), (f"{cores} workers", "analyse N")):
        row(
            label,
            key,
            f"  vs libspng decode on 1 core: {wall[spng] / wall[key]:4.2f}x wall, "
            f"{cpu[spng] / cpu[key]:4.2f}x CPU",
        )
    print(
        f"  projected on {cores} idle cores at this CPU cost: "
        f"{cores * n / cpu['analyse N']:.0f} frames/s "
        f"(decode-only ceiling {cores * n / cpu[spng]:.0f}/s)"
    )


if __name__ == "__main__":
    main()
