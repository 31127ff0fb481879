"""Validation speed on 640x480 PNG sessions against the decode ceiling.

Baselines (same run, same files): decoding every frame and nothing else, on one
core — with Pillow, and with libspng (pyspng), the decoder validate uses. No
per-frame check can beat the libspng figure per core. Then, on one core, the
cost of each stage per frame, and ``analyse`` end to end with one worker and
with one worker per core. Prints frames/s, ms/frame and the ratios.

    .venv/bin/python benchmarks/validate.py [--frames 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
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
from kartdata.validate import ValidateConfig, analyse
from kartdata.validate import desktop as dk
from kartdata.validate import features as ft
from kartdata.validate.features import default_workers


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds: on a shared machine wall time mostly measures the
    other jobs; CPU time is what the work costs."""
    return _median(fn, repeats)[1]


def _median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    return statistics.median(wall), statistics.median(cpu)


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = args.repeats
    with tempfile.TemporaryDirectory() as d, threadpool_limits(1, user_api="blas"):
        path = synth.make_native(Path(d) / "s", args.frames, width=640, height=480)
        frames = list(open_source(path).frames())
        n = len(frames)
        data = [Path(f.where).read_bytes() for f in frames]
        pil_w, pil = _median(lambda: [_pillow(b) for b in data], r)
        spng_w, spng = _median(lambda: [ft.decode_bytes(b, "", 0) for b in data], r)
        images = [ft.decode_bytes(b, "", 0) for b in data]
        buf = np.empty((n, *ft.SAMPLE, 3), np.uint8)
        samp = _median_s(lambda: [ft.sample(im, buf[k]) for k, im in enumerate(images)], r)

        def describe_all() -> None:
            for a in range(0, n, ft.BATCH):
                ft.describe(buf[a : a + ft.BATCH])

        desc = _median_s(describe_all, r)
        feats = ft._features(
            [(f.index, lambda im=im: im) for f, im in zip(frames, images, strict=True)]
        )[0]
        blocks = [dk.SessionBlocks(feats.blocks, np.ones(n, bool))]
        cfg = ValidateConfig()
        desk = _median_s(lambda: dk.detect(blocks, cfg.desktop), r)
        one = _median(lambda: analyse([open_source(path)], ValidateConfig(workers=1)), r)
        cores = default_workers()
        many = _median(lambda: analyse([open_source(path)], ValidateConfig(workers=cores)), r)
    ms = 1e3 / n
    print(f"frames: {n} 640x480 PNG, medians of {r}; CPU time unless marked wall")
    print("baselines, decode only, 1 core (CPU ms/frame; frames/s: wall):")
    print(f"  Pillow           {pil * ms:6.3f} ms/frame  {n / pil_w:6.0f} frames/s wall")
    print(f"  libspng (pyspng) {spng * ms:6.3f} ms/frame  {n / spng_w:6.0f} frames/s wall")
    print("stages, 1 core (CPU ms/frame):")
    print(f"  decode (libspng)                {spng * ms:6.3f}")
    print(f"  sample 120x160                  {samp * ms:6.3f}")
    print(f"  features (batches of {ft.BATCH})        {desc * ms:6.3f}")
    print(f"  desktop scoring, both rounds    {desk * ms:6.3f}  ({cores} thread(s))")
    print("analyse, all checks (CPU ms/frame of parent + workers; frames/s: wall):")
    for label, (wall, cpu) in (("1 worker", one), (f"{cores} workers", many)):
        print(
            f"  {label:10s} {cpu * ms:6.3f} ms/frame  {n / wall:6.0f} frames/s wall  "
            f"ratio to libspng decode on 1 core: {spng_w / wall:4.2f} (wall), "
            f"{spng / cpu:4.2f} (CPU)"
        )
    cpu = many[1]
    print(
        f"  projected on {cores} idle cores at this CPU cost: {cores * n / cpu:6.0f} frames/s "
        f"(decode-only ceiling {cores * n / spng:.0f}/s, Pillow 1 core {n / pil:.0f}/s)"
    )


if __name__ == "__main__":
    main()
