"""Demonstrations from ghost replays: how many racing frames carry a game time,
how exact that time is, and how fast the game plays a watched replay against
a time trial on the same track (the baseline, measured in the same run).

For each replay (``--replays``, names in the game's replay directory):

1. baseline: a time trial on the replay's track at 400x300 for ``--seconds``
   game seconds (kartplay.stk.game), the game's frames/s from its frame log;
2. the demonstration (kartplay.stk.demonstrate) of the replay's first
   ``--seconds`` game seconds: frames/s of the game and of the capture, share
   of racing frames with a clock read, the clock error against the game's own
   frame log (an independent channel: stdout, not pixels), and the ghost's
   logged distance against the replay's distance at the same time (that the
   game plays sample *i* at world time ``time[i]``, i.e. the label is the
   sample the frame shows). The goal: error under one replay sample (the
   replay's median sample spacing is printed beside it).

    .venv/bin/python benchmarks/stk_demonstrate.py [--seconds 20] [--replays a,b]
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kartplay.stk.config import GameSettings
from kartplay.stk.demonstrate import (
    DEMO_SETTINGS,
    GAME_LOG_FILE,
    LABELS_FILE,
    DemoConfig,
    record_demonstration,
)
from kartplay.stk.game import SuperTuxKart, TimeTrial
from kartplay.stk.racelog import RaceFrame, frames_in
from kartplay.stk.replay import SHIPPED_REPLAY_DIR, read_replay


def game_fps(frames: list[RaceFrame]) -> tuple[float, float, float]:
    """(median frames/s, game seconds per wall second, longest frame in s) over
    the race frames (clock above 0)."""
    racing = [f for f in frames if f.time_s > 0]
    if len(racing) < 2:
        return 0.0, 0.0, 0.0
    dts = [f.dt_s for f in racing[1:]]
    wall = sum(dts)
    return (
        1.0 / statistics.median(dts),
        (racing[-1].time_s - racing[0].time_s) / wall,
        max(dts),
    )


def time_trial(track: str, seconds: float, log: Path) -> tuple[float, float, float]:
    race = TimeTrial(
        track, laps=1, settings=GameSettings(DEMO_SETTINGS.width, DEMO_SETTINGS.height)
    )
    with SuperTuxKart(race, log_file=log) as game:
        game.wait_race()
        deadline = time.monotonic() + 20 * seconds + 60
        while game.frame().time_s < seconds and time.monotonic() < deadline:
            game.wait_frames(1, timeout_s=120)
    with log.open("rb") as f:
        return game_fps(frames_in(f))


def demonstration(name: str, seconds: float, root: Path) -> dict[str, float]:
    path = SHIPPED_REPLAY_DIR / f"{name}.replay"
    replay = read_replay(path)
    out = root / name
    t0 = time.monotonic()
    result = record_demonstration(DemoConfig(replay=path, out=out, seconds=seconds))
    wall = time.monotonic() - t0
    with (out / GAME_LOG_FILE).open("rb") as f:
        logged = frames_in(f)
    with (out / LABELS_FILE).open() as f:
        read = np.array([float(r["game_time_s"]) for r in csv.DictReader(f) if r["game_time_s"]])
    times = np.array([f.time_s for f in logged])
    error = np.abs(read[:, None] - times[None, :]).min(axis=1)
    s = replay.samples
    # The lap length: distance at the finish over the laps (the last sample is past the line).
    lap = float(np.interp(replay.header.min_time, s["time"], s["distance"])) / replay.header.laps
    race = [f for f in logged if 0.5 < f.time_s <= seconds]
    ghost = np.interp([f.time_s for f in race], s["time"], s["distance"]) % lap
    shown = np.array([f.distance_m for f in race]) % lap
    gap = np.abs(ghost - shown)
    gap = np.minimum(gap, lap - gap)
    fps, speed, longest = game_fps(logged)
    return {
        "frames": result.frames,
        "timed_share": result.timed_share,
        "clock_error_max_ms": float(error.max() * 1000),
        "clock_error_median_ms": float(np.median(error) * 1000),
        "sample_spacing_ms": float(s["time"].diff().median() * 1000),
        "ghost_distance_median_m": float(np.median(gap)) if len(gap) else float("nan"),
        "game_fps": fps,
        "game_speed": speed,
        "longest_frame_s": longest,
        "capture_fps": result.frames / wall,
        "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument(
        "--replays",
        default="standard_novice_sandtrack,standard_supertux_scotland",
        help="comma-separated replay names (without .replay)",
    )
    args = p.parse_args()
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {DEMO_SETTINGS.screensize}, "
        f"{args.seconds:g} game s per run"
    )
    with tempfile.TemporaryDirectory(prefix="kartkit-stk-demo-") as tmp:
        root = Path(tmp)
        for name in args.replays.split(","):
            track = read_replay(SHIPPED_REPLAY_DIR / f"{name}.replay").header.track
            base_fps, base_speed, base_longest = time_trial(
                track, args.seconds, root / f"{name}-tt.log"
            )
            d = demonstration(name, args.seconds, root)
            print(f"{name}:")
            print(
                f"  time trial (baseline): {base_fps:.1f} frames/s median, "
                f"{base_speed:.2f} game s per wall s, longest frame {base_longest:.2f} s"
            )
            print(
                f"  watched replay: {d['game_fps']:.1f} frames/s median "
                f"(ratio {d['game_fps'] / base_fps if base_fps else float('nan'):.2f} of the time trial), "
                f"{d['game_speed']:.2f} game s per wall s, longest frame {d['longest_frame_s']:.2f} s"
            )
            print(
                f"  recorded {d['frames']:.0f} frames at {d['capture_fps']:.1f}/s in {d['wall_s']:.0f} s "
                f"(menus and loading included); racing frames with a game time: "
                f"{100 * d['timed_share']:.1f} %"
            )
            print(
                f"  clock read vs the game's frame log: max {d['clock_error_max_ms']:.2f} ms, "
                f"median {d['clock_error_median_ms']:.2f} ms (one replay sample: "
                f"{d['sample_spacing_ms']:.0f} ms median); ghost's logged distance vs the "
                f"replay's at that time: median {d['ghost_distance_median_m']:.2f} m"
            )


if __name__ == "__main__":
    main()
