"""The virtual-input loop on the real game: capture → policy → keys.

Starts SuperTuxKart headless in a time trial (kartplay.stk.game), then, on the
same game and in one run, three phases of ``--seconds`` each:

1. capture only: grabs of the game's window as fast as they go (the baseline
   rate);
2. capture + inference: each grab through the policy (the exported model with
   THE preprocessing inside, then the action selection), nothing sent;
3. the drive loop itself (:class:`kartplay.window.WindowDriver`): window
   tracking, capture, policy, pulse-width keys on the XTEST virtual keyboard
   (``--max-fps``: its cap on policy steps, 0 = none, as drive-window's);
4. keys only: the virtual keyboard switching Left on and off each step (what
   phase 3 adds at most per step, besides finding the window).

Latency is from the start of a capture to the keys sent (phase 3) or to the
pad decided (phase 2); "added" is what the loop costs beyond capture +
inference: phase 3's p99 minus phase 2's. The game's own frame rate in each
phase comes from its per-frame race log. The model is a PilotNet (66x200,
outputs x,a,b) with seeded random weights and gas held, so the kart drives.

    .venv/bin/python benchmarks/window.py [--seconds 10] [--size 320x240] [--format keras]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kartdata.devices.capture import ScreenCapture
from kartmodel.untrained import export_untrained_pilotnet
from kartplay.policy import Policy, PolicyConfig, load
from kartplay.stk.config import GameSettings
from kartplay.stk.game import WINDOW_TITLE, SuperTuxKart, TimeTrial
from kartplay.stk.keys import write_keymap
from kartplay.window import DriveWindowConfig, WindowDriver


def pilotnet(out: Path, fmt: str) -> Path:
    return export_untrained_pilotnet(out / "run", seed=7, fmt=fmt)  # type: ignore[arg-type]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


def game_fps(game: SuperTuxKart, run: Callable[[], object]) -> tuple[object, float]:
    """``run()``'s result and the game's frames per second while it ran."""
    assert game.log is not None
    n0, t0 = game.log.frames, time.monotonic()
    out = run()
    return out, (game.log.frames - n0) / (time.monotonic() - t0)


def timed_loop(seconds: float, step: Callable[[], None]) -> list[float]:
    """Milliseconds of each ``step()`` for ``seconds``."""
    ms: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t) * 1e3)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="320x240", help="The game's window, WxH.")
    ap.add_argument("--format", default="keras", choices=("keras", "tflite"))
    ap.add_argument("--track", default="lighthouse")
    ap.add_argument("--max-fps", type=float, default=0.0, help="Phase 3's cap (0: none).")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        art = pilotnet(Path(tmp), args.format)
        policy: Policy = load(art, PolicyConfig(hold=("a",)))
        keymap = write_keymap(Path(tmp) / "stk-keys.json")
        race = TimeTrial(args.track, laps=3, settings=GameSettings(w, h))
        with SuperTuxKart(race) as game:
            game.wait_race()
            region = game.wait_window()
            with ScreenCapture(game.display) as cap:
                frame = cap.grab(region)
                policy.act(frame)  # the first call traces the model
                grab_ms, fps_a = game_fps(
                    game, lambda: timed_loop(args.seconds, lambda: cap.grab(region))
                )

                def capture_and_infer() -> None:
                    policy.act(cap.grab(region))

                infer_ms, fps_b = game_fps(
                    game, lambda: timed_loop(args.seconds, capture_and_infer)
                )
            config = DriveWindowConfig(
                model=str(art),
                window=WINDOW_TITLE,
                keymap=keymap,
                display=game.display,
                max_seconds=args.seconds,
                max_fps=args.max_fps,
            )
            with WindowDriver(config, policy=policy) as driver:
                stats, fps_c = game_fps(game, driver.run)
                keyboard = driver.actuator.keyboard  # type: ignore[union-attr]
                steer = [frozenset({"Up"}), frozenset({"Up", "Left"})]
                flip = iter(range(1 << 62))
                keys_ms = timed_loop(args.seconds, lambda: keyboard.set_held(steer[next(flip) % 2]))
                keyboard.release_all()
            distance = game.frame().distance_m

    assert isinstance(grab_ms, list) and isinstance(infer_ms, list)
    capture_fps = len(grab_ms) / (sum(grab_ms) / 1e3)
    infer_fps = len(infer_ms) / (sum(infer_ms) / 1e3)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"SuperTuxKart {args.size} on {args.track}, PilotNet 66x200 ({args.format}), "
          f"{args.seconds:g} s per phase")  # fmt: skip
    print(f"{'phase':34} {'rate/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'game fps':>9}")
    print(f"{'1 capture only':34} {capture_fps:7.1f} {statistics.median(grab_ms):7.2f} "
          f"{pct(grab_ms, 0.99):7.2f} {fps_a:9.1f}")  # fmt: skip
    print(f"{'2 capture + inference':34} {infer_fps:7.1f} {statistics.median(infer_ms):7.2f} "
          f"{pct(infer_ms, 0.99):7.2f} {fps_b:9.1f}")  # fmt: skip
    print(f"{'3 drive loop (capture→keys)':34} {stats.policy_fps:7.1f} "
          f"{stats.latency_ms_p50:7.2f} {stats.latency_ms_p99:7.2f} {fps_c:9.1f}")  # fmt: skip
    print(f"{'4 keys only (set_held, Left on/off)':34} {len(keys_ms) / (sum(keys_ms) / 1e3):7.1f} "
          f"{statistics.median(keys_ms):7.3f} {pct(keys_ms, 0.99):7.3f} {'':>9}")  # fmt: skip
    added99 = stats.latency_ms_p99 - pct(infer_ms, 0.99)
    added50 = stats.latency_ms_p50 - statistics.median(infer_ms)
    print(f"loop adds to capture + inference: p50 {added50:+.2f} ms, p99 {added99:+.2f} ms "
          f"(goal: p99 < 5 ms)")  # fmt: skip
    print(f"policy rate / game frame rate: {stats.policy_fps / fps_c:.2f} "
          f"(goal: >= 1); policy rate / capture-only rate: {stats.policy_fps / capture_fps:.2f}")  # fmt: skip
    print(f"drive loop: {stats.steps} steps, capture p50 {stats.capture_ms_p50:.2f} ms, "
          f"inference p50 {stats.infer_ms_p50:.2f} ms, kart at {distance:.0f} m; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip


if __name__ == "__main__":
    main()
