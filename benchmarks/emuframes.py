"""Frames straight from the emulator: what publishing costs inside GetKeys, and
how old a frame is when the policy gets it, against screen capture of the same
emulator window in the same run.

1. Publish cost: the real emulator (dummy video) runs the test ROM drawing a
   320x240 pattern at 16 and 32 bits; the plugin times each frame it takes
   (``publish_ns`` in the ring), p50 / p99 against the 16.7 ms frame period.
2. Frame age: the ROM shown by a video plugin that draws a CPU-written frame
   buffer (Glide64, in a 320x240 window on a private Xvfb); in one loop the
   policy's feed takes the newest ring frame (age = now - the moment the plugin
   took it), and mss captures the window, whose frame number is found by
   matching the pixels against the ROM's known pattern (age = capture time -
   the moment the plugin took that frame).

    .venv/bin/python benchmarks/emuframes.py [--frames 600] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kartplay import emuframes, testrom  # noqa: E402

EMULATOR = "/usr/games/mupen64plus"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/mupen64plus")
FRAME_MS = 1000 / 60


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def build_plugin() -> Path:
    subprocess.run(["make", "-s", "-C", str(ROOT / "plugin"), "all", "test-plugin"], check=True)
    return ROOT / "plugin" / "build"


def emulator(
    tmp: Path, plugin: Path, video: testrom.Video, ring: Path, gfx: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    rom = testrom.write(tmp / f"bench{video.bits}.z64", video)
    (tmp / "config").mkdir(exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("KARTBOT_")}
    full.update(SDL_AUDIODRIVER="dummy", KARTBOT_PLUGGED="1", KARTBOT_PORT="1")
    full.update(KARTBOT_FRAMES=str(ring), KARTBOT_FRAMES_SLOTS="64", **env)
    cmd = [EMULATOR, "--configdir", str(tmp / "config"), "--nosaveoptions", "--noosd"]
    cmd += ["--gfx", gfx, "--audio", "dummy", "--rsp", "dummy", "--input", str(plugin)]
    cmd += ["--emumode", "2", "--windowed", "--resolution", f"{video.width}x{video.height}"]
    return subprocess.Popen(
        [*cmd, str(rom)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full
    )


def end(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out.decode(errors="replace")


def publish_cost(build: Path, frames: int) -> None:
    print(f"publish cost inside GetKeys, {frames} frames of 320x240, real emulator, dummy video")
    for bits in (16, 32):
        video = testrom.Video(bits=bits)
        ring = Path("/dev/shm") / f"kartkit-bench-{uuid.uuid4().hex}"
        with tempfile.TemporaryDirectory() as tmp:
            env = {"SDL_VIDEODRIVER": "dummy", "KARTBOT_STOP_AFTER": str(frames)}
            proc = emulator(
                Path(tmp),
                build / "mupen64plus-input-kartbot-test.so",
                video,
                ring,
                "dummy",
                env,
            )
            try:
                with emuframes.FrameRing(ring, wait_s=20) as r:
                    costs = [f.publish_ns / 1e3 for f in r.frames(2.0)]
                    lost = r.lost
            finally:
                end(proc)
                ring.unlink(missing_ok=True)
        mb = video.frame_bytes / 1e6
        print(
            f"  {bits}-bit ({mb:.2f} MB/frame): p50 {pct(costs, 50):6.1f} us  p99 "
            f"{pct(costs, 99):6.1f} us  max {max(costs):7.1f} us  frames {len(costs)} lost {lost}"
            f"  p99 = {pct(costs, 99) / 1e3 / FRAME_MS:.2%} of a frame"
        )


def frame_number(image: np.ndarray, candidates: range, video: testrom.Video) -> int | None:
    """The ROM frame on screen: the candidate whose pattern matches the pixels
    (Glide64 shows the frame one line down, its first line black: rows are
    compared with that shift too)."""
    best, best_err = None, 1e9
    shown = image.astype(np.int16)
    for f in candidates:
        if f < 0:
            continue
        e = _expected(f, video)
        for dy in (0, 1):
            err = float(np.abs(shown[dy:] - e[: video.height - dy]).mean())
            if err < best_err:
                best, best_err = f, err
    return best if best_err < 1 else None


_EXPECTED: dict[int, np.ndarray] = {}


def _expected(f: int, video: testrom.Video) -> np.ndarray:
    if f not in _EXPECTED:
        words = np.array(testrom.pattern_words(f, video), np.uint32)
        _EXPECTED[f] = emuframes.to_rgb(words, video.width, video.height, video.bits).astype(
            np.int16
        )
    return _EXPECTED[f]


def frame_age(build: Path, seconds: float) -> None:
    from kartdata.devices.capture import ScreenCapture, WindowRegion
    from kartplay.stk.display import HeadlessDisplay

    video = testrom.Video(bits=16)
    ring = Path("/dev/shm") / f"kartkit-bench-{uuid.uuid4().hex}"
    gfx = str(LIBDIR / "mupen64plus-video-glide64.so")
    print(f"frame age at the policy, {seconds:g} s, Glide64 window 320x240 on Xvfb, same run")
    with HeadlessDisplay("640x480") as display, tempfile.TemporaryDirectory() as tmp:
        env = {"DISPLAY": display.name}
        proc = emulator(Path(tmp), build / "mupen64plus-input-kartbot.so", video, ring, gfx, env)
        try:
            taken: dict[int, int] = {}  # frame number -> when the plugin took it
            stop = threading.Event()

            def index() -> None:
                with emuframes.FrameRing(ring, wait_s=20) as r:
                    while not stop.is_set():
                        f = r.next(0.2)
                        if f is not None:
                            taken[f.frame] = f.t_ns

            t = threading.Thread(target=index, daemon=True)
            t.start()
            feed = emuframes.EmulatorFrameFeed(ring)
            feed.wait(20)
            window = WindowRegion("Glide64", display.name)
            region = window.wait(20)
            cap = ScreenCapture(display.name)
            ring_age: list[float] = []
            ring_ms: list[float] = []
            shots: list[tuple[int, np.ndarray]] = []
            screen_ms: list[float] = []
            deadline = time.monotonic() + seconds

            def policy_on_ring() -> None:
                while time.monotonic() < deadline:
                    if feed.grab() is not None:
                        ring_age.append(feed.age_ms[-1][1])
                        ring_ms.append(feed.capture_ms[-1][1])

            # The screen policy captures at the game's rate; matching the
            # pixels to frame numbers waits until the run is over.
            p = threading.Thread(target=policy_on_ring, daemon=True)
            p.start()
            tick = time.monotonic()
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                image = cap.grab(region)
                shots.append((time.monotonic_ns(), image))
                screen_ms.append((time.perf_counter() - t0) * 1e3)
                tick += FRAME_MS / 1e3
                time.sleep(max(0.0, tick - time.monotonic()))
            p.join(timeout=5)
            stop.set()
            t.join(timeout=5)
            feed.close()
            cap.close()
            window.close()
        finally:
            out = end(proc)
            ring.unlink(missing_ok=True)
    by_time = sorted((t, f) for f, t in taken.items())
    screen_age: list[float] = []
    unmatched = 0
    for t_cap, image in shots:
        shown = [f for t, f in by_time if t <= t_cap][-12:]
        f = frame_number(image, range(shown[0], shown[-1] + 1), video) if shown else None
        if f is None:
            unmatched += 1
        else:
            screen_age.append((t_cap - taken[f]) / 1e6)
    if not screen_age:
        print("  no captured frame matched the ROM's pattern; emulator said:\n" + out[-1500:])
        return
    print(
        f"  ring   : age p50 {pct(ring_age, 50):5.1f} ms p99 {pct(ring_age, 99):5.1f} ms"
        f"  to RGB p50 {pct(ring_ms, 50):5.2f} ms  ({len(ring_age)} frames)"
    )
    print(
        f"  screen : age p50 {pct(screen_age, 50):5.1f} ms p99 {pct(screen_age, 99):5.1f} ms"
        f"  capture p50 {pct(screen_ms, 50):5.2f} ms  ({len(screen_age)} matched, "
        f"{unmatched} not matched)"
    )
    print(f"  ratio  : screen / ring age p50 {pct(screen_age, 50) / pct(ring_age, 50):.1f}x")


GFX_PLUGINS = ("rice", "glide64", "glide64mk2", "arachnoid", "z64")


def plugin_survey(build: Path, frames: int) -> None:
    """Which video plugins give correct frames: every Debian video plugin (and
    dummy) on a private Xvfb, the ROM drawing with the CPU and with the RDP
    (a command list sent straight to the DP, run by the plugin's ProcessRDPList)."""
    from kartplay.stk.display import HeadlessDisplay

    cases = [(draw, bits) for draw in ("cpu", "rdp") for bits in (16, 32)]
    print(f"frames equal to what the ROM drew, of {frames - 10} (from frame 10 on), 320x240")
    print("  " + " " * 12 + " ".join(f"{f'{d} {b}-bit':>13}" for d, b in cases))
    with HeadlessDisplay("640x480") as display:
        for name in ("dummy", *GFX_PLUGINS):
            gfx = name if name == "dummy" else str(LIBDIR / f"mupen64plus-video-{name}.so")
            if name != "dummy" and not Path(gfx).exists():
                print(f"  {name:<12} not installed (apt-get install mupen64plus-video-{name})")
                continue
            cells = [_survey_one(build, gfx, display.name, *case, frames) for case in cases]
            print(f"  {name:<12}" + " ".join(f"{c:>13}" for c in cells), flush=True)


def _survey_one(build: Path, gfx: str, display: str, draw: str, bits: int, frames: int) -> str:
    video = testrom.Video(bits=bits, draw=draw)  # type: ignore[arg-type]
    expected = testrom.rdp_words if draw == "rdp" else testrom.pattern_words
    ring = Path("/dev/shm") / f"kartkit-bench-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DISPLAY": display, "KARTBOT_STOP_AFTER": str(frames)}
        plugin = build / "mupen64plus-input-kartbot-test.so"
        proc = emulator(Path(tmp), plugin, video, ring, gfx, env)
        try:
            with emuframes.FrameRing(ring, wait_s=30) as r:
                got = list(r.frames(3.0))
        except emuframes.FrameRingError:
            got = []
        finally:
            end(proc)
            ring.unlink(missing_ok=True)
    # The first frames can predate the first picture: judge from frame 10 on.
    judged = [f for f in got if f.frame >= 10]
    if not judged:
        return "none"
    good, late = 0, 0
    for f in judged:
        shown = f.rgb.astype(np.int16)
        for lag in (0, 1, 2):
            words = np.array(expected(f.frame - lag, video), np.uint32)
            want = emuframes.to_rgb(words, video.width, video.height, video.bits)
            if shown.shape == want.shape and np.abs(shown - want).max() <= 8:
                good += lag == 0
                late += lag > 0
                break
    return f"{good}/{len(judged)}" + (f" +{late}late" if late else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600, help="frames per publish-cost run")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the frame-age run")
    ap.add_argument("--survey-frames", type=int, default=120, help="frames per plugin run")
    args = ap.parse_args()
    build = build_plugin()
    publish_cost(build, args.frames)
    frame_age(build, args.seconds)
    plugin_survey(build, args.survey_frames)


if __name__ == "__main__":
    main()
