"""Validation speed on 640x480 PNG sessions against the decode ceiling.

Baseline (same run, same files): Pillow decoding every frame on one core —
what any per-frame check must at least pay. Prints frames/s and the ratio.

    .venv/bin/python benchmarks/validate.py [--frames 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kartdata import synth
from kartdata.sources import open_source
from kartdata.sources.base import load_image_file
from kartdata.validate import ValidateConfig, analyse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = synth.make_native(Path(d) / "s", args.frames, width=640, height=480)
        src = open_source(path)
        frames = list(src.frames())
        base, ours = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for f in frames:
                load_image_file(Path(f.where), f.index)
            base.append(len(frames) / (time.perf_counter() - t))
            t = time.perf_counter()
            analyse([open_source(path)], ValidateConfig())
            ours.append(len(frames) / (time.perf_counter() - t))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"frames: {len(frames)} 640x480 PNG, repeats: {args.repeats}")
    print(f"baseline Pillow decode, 1 core: {b:8.0f} frames/s (median)")
    print(f"kartdata validate, all checks:  {o:8.0f} frames/s (median)")
    print(f"ratio validate / baseline:      {o / b:8.2f}x")


if __name__ == "__main__":
    main()
