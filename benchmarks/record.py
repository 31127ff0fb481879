"""Recorder: achieved rate, jitter and CPU at 10, 15 and 30 fps, 640x480 with encoding.

Starts its own Xvfb with a pygame window drawing a moving, noisy 640x480 scene
(so PNG has real work to do), then records it for a few seconds per rate with
the kartdata recorder, and with the baseline the earlier tools used: grab,
encode and write in the loop, then ``sleep(1 / fps)`` (a Tk-timer-like loop
whose period is the work time plus the sleep). Prints medians and ratios.

    .venv/bin/python benchmarks/record.py [--seconds 4] [--format png]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil

from kartdata.devices.capture import Region, ScreenCapture
from kartdata.devices.controls import Controls
from kartdata.record import Player, Recorder, RecorderConfig
from kartdata.schema import Pad, SessionMeta
from kartdata.sources.native import NativeSession, SessionWriter, encode_image

SCENE = textwrap.dedent(
    """
    import os, sys
    os.environ["SDL_VIDEO_WINDOW_POS"] = "0,0"
    import numpy as np, pygame
    pygame.display.init()
    screen = pygame.display.set_mode((640, 480))
    pygame.display.set_caption("bench-scene")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    noise = rng.integers(0, 24, (640, 480, 3), dtype=np.uint8)
    frames = []
    for t in range(0, 90, 3):
        img = np.stack([(x.T + t) % 256, (y.T * 2 + t) % 256, (x.T + y.T) // 4 % 256], -1)
        frames.append(pygame.surfarray.make_surface(img.astype(np.uint8) + noise))
    clock, i = pygame.time.Clock(), 0
    print("ready", flush=True)
    while True:
        pygame.event.pump()
        screen.blit(frames[i % len(frames)], (0, 0))
        pygame.display.flip()
        i += 1
        clock.tick(30)
    """
)


class Still:
    def read(self) -> Controls:
        return Controls(Pad(x=0.1, buttons=frozenset({"a"})))

    def close(self) -> None:
        pass


def start_x() -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    text = b""
    while not text.endswith(b"\n"):
        select.select([r], [], [], 30)
        text += os.read(r, 64)
    os.close(r)
    return proc, f":{text.decode().strip()}"


def naive(cap: ScreenCapture, region: Region, out: Path, fps: float, seconds: float, fmt: str):  # type: ignore[no-untyped-def]
    meta = SessionMeta(width=region.width, height=region.height, fps=fps, image_format=fmt)
    t: list[int] = []
    with SessionWriter(out, meta) as w:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t.append(time.monotonic_ns())
            w.write(encode_image(cap.grab(region), fmt), Still().read().pad, t_ns=t[-1])
            time.sleep(1 / fps)
    return t, 0


def ours(cap: ScreenCapture, region: Region, out: Path, fps: float, seconds: float, fmt: str):  # type: ignore[no-untyped-def]
    player = Player("p", lambda: region, (region.width, region.height), Still())
    cfg = RecorderConfig(out=out, fps=fps, max_seconds=seconds, image_format=fmt)
    st = Recorder(cfg, [player], cap).run()["p"]
    t = [f.t_ns for f in NativeSession(out / "p-001").frames()]
    return t, st.dropped


def measure(fn, cap, region, out, fps, seconds, fmt) -> dict[str, float]:  # type: ignore[no-untyped-def]
    proc = psutil.Process()
    proc.cpu_percent(None)
    wall = time.monotonic()
    t, dropped = fn(cap, region, out, fps, seconds, fmt)
    wall = time.monotonic() - wall
    cpu = proc.cpu_percent(None) / 100
    gaps_ms = np.diff(np.array(t)) / 1e6
    return {
        "fps": (len(t) - 1) / ((t[-1] - t[0]) / 1e9),
        "jitter_ms": float(np.std(gaps_ms)),
        "gap_p99_ms": float(np.percentile(gaps_ms, 99)),
        "gap_median_ms": float(statistics.median(gaps_ms)),
        "dropped": dropped,
        "cpu_cores": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--format", default="png", choices=["png", "jpg"])
    args = ap.parse_args()
    xproc, display = start_x()
    scene = subprocess.Popen(
        [sys.executable, "-c", SCENE],
        env={
            **os.environ,
            "DISPLAY": display,
            "SDL_VIDEODRIVER": "x11",
            "PYGAME_HIDE_SUPPORT_PROMPT": "1",
        },
        stdout=subprocess.PIPE,
    )
    try:
        assert scene.stdout is not None and scene.stdout.readline().strip() == b"ready"
        region = Region(0, 0, 640, 480)
        print(f"640x480 {args.format}, {args.seconds:g} s per run, {os.cpu_count()} cores")
        print(
            f"{'fps':>4} {'loop':>8} {'achieved':>9} {'jitter ms':>10} {'p99 gap':>8} {'dropped':>8} {'CPU cores':>9}"
        )
        with ScreenCapture(display) as cap, tempfile.TemporaryDirectory() as tmp:
            for fps in (10, 15, 30):
                res = {}
                for name, fn in (("naive", naive), ("kartkit", ours)):
                    out = Path(tmp) / f"{name}-{fps}"
                    res[name] = r = measure(fn, cap, region, out, fps, args.seconds, args.format)
                    print(
                        f"{fps:>4} {name:>8} {r['fps']:>9.2f} {r['jitter_ms']:>10.2f} "
                        f"{r['gap_p99_ms']:>8.1f} {r['dropped']:>8} {r['cpu_cores']:>9.2f}"
                    )
                a, b = res["kartkit"], res["naive"]
                print(
                    f"     rate error: kartkit {abs(a['fps'] - fps) / fps:.1%} vs naive "
                    f"{abs(b['fps'] - fps) / fps:.1%}; jitter ratio naive/kartkit "
                    f"{b['jitter_ms'] / max(a['jitter_ms'], 1e-3):.1f}x"
                )
    finally:
        scene.kill()
        xproc.terminate()


if __name__ == "__main__":
    main()
