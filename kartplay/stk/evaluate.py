"""``kartplay stk evaluate``: an exported model drives SuperTuxKart time
trials, scored against the human experts of the ghost replays the game ships.

Per track, one time trial (:class:`~kartplay.stk.game.SuperTuxKart`, a private
Xvfb) driven by :class:`~kartplay.window.WindowDriver` (capture → the shared
policy → keys on the virtual keyboard), until the game's highscore table has
the finish, the race clock reaches the limit (``limit_factor`` × the expert's
time), or a wall-clock bound (the game slows its clock when frames are slow,
so a limit in race seconds alone could take unbounded wall time).

How the expert's time is compared (like with like):

- the expert is the fastest shipped replay of the track that is a forward
  (not reverse) time trial with laps; its ``min_time`` covers ``laps`` laps
  of that replay. The model's trial is run at the replay's difficulty.
- when the asked laps differ from the replay's, the expert's time for the
  asked laps is its mean lap time × the asked laps (``compare`` says
  "per lap"); both times include one standing start.
- a run that did not finish gets no ratio; it gets how far it got: laps
  completed and the distance into the current lap from the game's per-frame
  race log at the frame the limit was reached, the progress along the race
  in metres (the lap length is the expert's: its distance at ``min_time`` /
  its laps), and the race time the expert needed to get as far
  (``expert_to_progress_s``, from the replay's distance column).

Written under ``out``: ``evaluate.json`` and ``evaluate.csv`` (one row per
track), ``evaluate.png`` (the plot), ``<first track>.gif`` (the first run as
the model saw it, 5 frames per wall second), ``<track>.log`` (the game's output).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from kartdata.errors import KartError
from kartplay.keys import PulseConfig
from kartplay.policy import Policy, PolicyConfig
from kartplay.rescue import RescueConfig
from kartplay.stk.config import GameSettings
from kartplay.stk.game import WINDOW_TIMEOUT_S, WINDOW_TITLE, SuperTuxKart, TimeTrial
from kartplay.stk.install import GameInstall
from kartplay.stk.keys import RESCUE_BUTTON, write_keymap
from kartplay.stk.racelog import RaceFrame, frames_in
from kartplay.stk.replay import DIFFICULTIES, SHIPPED_REPLAY_DIR, read_replay, shipped_replays
from kartplay.window import DriveWindowConfig, WindowDriver

#: The limit on a run, as a multiple of the expert's time for the same laps.
DEFAULT_LIMIT_FACTOR = 3.0
#: Wall-clock bound on a run: this many wall seconds per race second of the
#: limit, plus the start (the game's clock runs slower than the wall's when
#: frames are slow; at 320x240 on two busy cores it ran at about 0.5-1x).
WALL_PER_RACE_S = 4.0
WALL_START_S = 30.0
#: GIF frames per wall second (grabbed beside the drive loop, not by it),
#: and the most it keeps (the first 90 s: ~25 kB a frame at 320x240).
GIF_FPS = 5.0
GIF_MAX_FRAMES = 450
#: With the rescue on, a kart that has not got STALL_M further along the race
#: in STALL_S race seconds is rescued too: one wiggling against a tree, lost
#: in the grass or driving the wrong way moves the view too much to look still.
STALL_S = 4.0
STALL_M = 5.0

Ended = Literal["finished", "limit", "wall-clock bound", "game exited", "window closed"]


class EvaluateError(KartError):
    """An evaluation that cannot run as asked."""


@dataclass(frozen=True, slots=True)
class EvaluateConfig:
    """Everything ``kartplay stk evaluate`` takes, checked once here."""

    #: An exported model directory (``kartmodel export``).
    model: str
    tracks: tuple[str, ...]
    laps: int = 1
    limit_factor: float = DEFAULT_LIMIT_FACTOR
    out: Path = Path("stk-evaluate")
    #: None: on each track, the kart of the expert's replay, so that the clone
    #: drives what the human drove and what its demonstrations show.
    kart: str | None = None
    settings: GameSettings = field(default_factory=GameSettings)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    pulse: PulseConfig = field(default_factory=PulseConfig)
    #: The game's rescue when the view stands still or the race stalls (STALL_S),
    #: as a player does (button None: never).
    rescue: RescueConfig = field(default_factory=lambda: RescueConfig(RESCUE_BUTTON))
    #: Most policy steps a second (0: as fast as capture and model go).
    max_fps: float = 0.0
    #: Where the expert replays are read from.
    replays: Path = SHIPPED_REPLAY_DIR
    #: Write the GIF of the first track's run.
    gif: bool = True

    def __post_init__(self) -> None:
        if not self.tracks or any(not t for t in self.tracks):
            raise EvaluateError("give at least one track (--tracks lighthouse,sandtrack)")
        if len(set(self.tracks)) != len(self.tracks):
            raise EvaluateError(f"a track is named twice in {','.join(self.tracks)}")
        if self.laps < 1:
            raise EvaluateError(f"laps {self.laps}: a time trial has at least one lap")
        if not (self.limit_factor > 0 and math.isfinite(self.limit_factor)):
            raise EvaluateError(f"limit factor {self.limit_factor} is not a positive number")
        if not (self.max_fps >= 0 and math.isfinite(self.max_fps)):
            raise EvaluateError(f"max fps {self.max_fps} is not a number ≥ 0")


@dataclass(frozen=True, slots=True)
class ExpertDrive:
    """A shipped replay as the yardstick for one track."""

    replay: str
    track: str
    laps: int
    #: The replay's ``min_time``: its best finish over ``laps`` laps (game s).
    min_time_s: float
    difficulty: int
    lap_length_m: float
    #: The kart the expert drove (the replay's first).
    kart: str
    #: Race time and progress along the race (m from the start), sample by sample.
    times_s: np.ndarray = field(repr=False, compare=False)
    progress_m: np.ndarray = field(repr=False, compare=False)

    def time_for(self, laps: int) -> float:
        """The expert's time for ``laps`` laps (per-lap scaled if they differ)."""
        return self.min_time_s if laps == self.laps else self.min_time_s / self.laps * laps

    def time_to(self, progress_m: float) -> float | None:
        """Race time at which the expert first got ``progress_m`` along the race."""
        if progress_m <= 0:
            return None
        reached = np.nonzero(self.progress_m >= progress_m)[0]
        if len(reached) == 0:
            return None
        i = int(reached[0])
        if i == 0:
            return float(self.times_s[0])
        # linear between the samples either side: they are ~0.05 s apart
        p0, p1 = self.progress_m[i - 1], self.progress_m[i]
        t0, t1 = self.times_s[i - 1], self.times_s[i]
        return float(t0 + (t1 - t0) * (progress_m - p0) / (p1 - p0)) if p1 > p0 else float(t1)


def expert_for(track: str, replays: Path = SHIPPED_REPLAY_DIR) -> ExpertDrive:
    """The fastest (per lap) forward time-trial replay of ``track`` in ``replays``."""
    candidates = []
    tracks: set[str] = set()
    for path in shipped_replays(replays):
        r = read_replay(path)
        h = r.header
        if h.mode != "time-trial" or h.reverse or h.laps < 1:
            continue
        tracks.add(h.track)
        if h.track == track:
            candidates.append(r)
    if not candidates:
        raise EvaluateError(
            f"track {track!r} has no forward time-trial replay in {replays} to compare with; "
            f"tracks that have one: {', '.join(sorted(tracks))}"
        )
    best = min(candidates, key=lambda r: r.header.min_time / r.header.laps)
    h = best.header
    s = best.samples
    at_finish = float(best.at(h.min_time)["distance"].iloc[0])
    lap = at_finish / h.laps
    if not lap > 0:
        raise EvaluateError(f"{h.path}: distance {at_finish} at min_time is not a lap length")
    d = s["distance"].to_numpy()
    # Until the kart first crosses the start line (within the first ~0.2 s)
    # the replay holds a negative placeholder (-length on lighthouse, -814 m on
    # xr591's 1241 m lap); the kart is then at 0. The running maximum drops
    # one-sample glitches (xr591 falls back a lap for one sample at 75.2 s).
    progress = np.maximum(d, 0.0)
    return ExpertDrive(
        replay=h.name,
        track=h.track,
        laps=h.laps,
        min_time_s=h.min_time,
        difficulty=DIFFICULTIES.index(h.difficulty),
        lap_length_m=lap,
        kart=h.kart,
        times_s=s["time"].to_numpy(),
        progress_m=np.maximum.accumulate(progress),
    )


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One row of the table."""

    track: str
    laps: int
    kart: str
    finished: bool
    #: The game's finish time if finished, else the race clock at the stop.
    race_time_s: float
    expert_replay: str
    expert_laps: int
    expert_min_time_s: float
    #: The expert's time for ``laps`` laps.
    expert_time_s: float
    compare: Literal["same laps", "per lap"]
    #: race time / expert time, for a finished run only.
    ratio: float | None
    limit_s: float
    ended: Ended
    laps_done: int
    #: Into the current lap, from the race log's frame at the stop.
    distance_m: float
    progress_m: float
    progress_frac: float
    expert_to_progress_s: float | None
    #: Race clock when the model took over (the game's clock starts at its first frame).
    start_clock_s: float
    policy_fps: float
    frames: int
    #: Times the rescue was pressed.
    rescues: int


@dataclass(slots=True)
class EvaluateReport:
    config: EvaluateConfig
    runs: list[TrackRun] = field(default_factory=list)
    traces: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    experts: dict[str, ExpertDrive] = field(default_factory=dict)
    gif: Path | None = None
    plot: Path | None = None
    table_json: Path | None = None
    table_csv: Path | None = None

    def table(self) -> str:
        lines = [
            f"{'track':<22} {'kart':<15} {'laps':>4} {'result':<12} {'time s':>8} "
            f"{'expert s':>8} {'ratio':>6} {'progress':>9} {'rescues':>7}"
        ]
        for r in self.runs:
            result = "finished" if r.finished else f"no ({r.ended})"
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
            lines.append(
                f"{r.track:<22} {r.kart:<15} {r.laps:>4} {result:<12} {r.race_time_s:>8.2f} "
                f"{r.expert_time_s:>8.2f} {ratio:>6} {100 * r.progress_frac:>8.1f}% {r.rescues:>7}"
            )
        return "\n".join(lines)


def laps_and_distance(frames: Sequence[RaceFrame], lap_length_m: float) -> tuple[int, float]:
    """Laps completed and distance into the current lap at the last frame.

    The log's distance starts again from 0 on each new lap: a drop of more than
    half a lap is a lap completed, a rise of as much (backwards over the line)
    takes one back."""
    laps = sum(
        _lap_change(a.distance_m, b.distance_m, lap_length_m) for a, b in itertools.pairwise(frames)
    )
    return laps, frames[-1].distance_m if frames else 0.0


def _lap_change(before_m: float, after_m: float, lap_m: float) -> int:
    """+1 when the in-lap distance fell by over half a lap (the line crossed),
    -1 when it rose by as much (back over it), else 0."""
    if before_m - after_m > 0.5 * lap_m:
        return 1
    if after_m - before_m > 0.5 * lap_m:
        return -1
    return 0


def evaluate(config: EvaluateConfig, status: Callable[[str], None] | None = None) -> EvaluateReport:
    """Drive every track of ``config`` and write the table, GIF and plot."""
    # every name checked before a game starts
    install = GameInstall.find()
    for track in config.tracks:
        install.check(track)
    experts = {t: expert_for(t, config.replays) for t in config.tracks}
    for track in config.tracks:
        install.check(track, config.kart or experts[track].kart)
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        keymap = write_keymap(out / "stk-keys.json")
    except OSError as e:
        raise EvaluateError(f"{out}: cannot write there ({e.strerror})") from None
    from kartplay.policy import load

    policy = load(config.model, config.policy)  # once: TensorFlow and the graph cost seconds
    report = EvaluateReport(config, experts=experts)
    # SIGTERM ends the evaluation as Ctrl-C does: the drive loop releases the
    # keys, the game and Xvfb end, nothing further starts.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        for i, track in enumerate(config.tracks):
            shots: list[np.ndarray] | None = [] if config.gif and i == 0 else None
            run, trace = _run_track(config, track, experts[track], policy, keymap, shots, status)
            report.runs.append(run)
            report.traces[track] = trace
            if status is not None:
                status(report.table().splitlines()[-1])
            if shots:
                from kartplay.sim.drive import write_gif

                report.gif = write_gif(shots, out / f"{track}.gif", fps=GIF_FPS)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    report.plot = write_plot(report, out / "evaluate.png")
    report.table_json, report.table_csv = save_table(report, out)
    return report


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run_track(
    config: EvaluateConfig,
    track: str,
    expert: ExpertDrive,
    policy: Policy,
    keymap: Path,
    shots: list[np.ndarray] | None,
    status: Callable[[str], None] | None,
) -> tuple[TrackRun, tuple[np.ndarray, np.ndarray]]:
    kart = config.kart or expert.kart
    race = TimeTrial(track, config.laps, kart, expert.difficulty, config.settings)
    expert_s = expert.time_for(config.laps)
    limit_s = config.limit_factor * expert_s
    log_path = config.out / f"{track}.log"
    stop = threading.Event()
    watched: dict[str, object] = {}
    with SuperTuxKart(race, log_file=log_path) as game:
        drive = DriveWindowConfig(
            model=config.model,
            window=WINDOW_TITLE,
            keymap=keymap,
            display=game.display,
            policy=config.policy,
            pulse=config.pulse,
            rescue=config.rescue,
            max_fps=config.max_fps,
            window_wait_s=WINDOW_TIMEOUT_S,
        )
        policy.reset()
        # Opened while the game loads; the keys are released when it closes.
        with WindowDriver(drive, policy=policy, status=status) as driver:
            game.wait_race()
            start = game.frame()
            watcher = threading.Thread(
                target=_watch,
                args=(game, stop, limit_s, WALL_START_S + WALL_PER_RACE_S * limit_s, shots,
                      watched, Stall(expert.lap_length_m),
                      driver.rescue.request if driver.rescue is not None else None),
                name="stk-evaluate-watch",
                daemon=True,
            )  # fmt: skip
            watcher.start()
            try:
                stats = driver.run(stop)
            finally:
                stop.set()
                watcher.join(10.0)
        if "error" in watched:
            raise watched["error"]  # type: ignore[misc]
        result = game.result()
    if stats.ended == "interrupted":
        raise KeyboardInterrupt  # the drive loop took it (keys released); end the evaluation
    ended: Ended = watched.get("ended", "window closed")  # type: ignore[assignment]
    with log_path.open("rb") as f:
        frames = frames_in(f)
    # The run as far as the stop: the first frame at the limit, else the last
    # frame the watcher saw before it stopped the drive.
    cut_s = limit_s if ended == "limit" else float(watched.get("clock", math.inf))  # type: ignore[arg-type]
    until = [f for f in frames if f.time_s > 0]
    stop_at = next((k for k, f in enumerate(until) if f.time_s >= cut_s), len(until) - 1)
    until = until[: stop_at + 1]
    laps_done, distance = laps_and_distance(until, expert.lap_length_m)
    if result.finished:
        laps_done, distance = config.laps, 0.0
    progress = laps_done * expert.lap_length_m + distance
    race_time = result.time_s if result.finished else (until[-1].time_s if until else 0.0)
    times = np.array([f.time_s for f in until])
    dist = np.array([f.distance_m for f in until])
    run = TrackRun(
        track=track,
        laps=config.laps,
        kart=kart,
        finished=result.finished,
        race_time_s=race_time,
        expert_replay=expert.replay,
        expert_laps=expert.laps,
        expert_min_time_s=expert.min_time_s,
        expert_time_s=expert_s,
        compare="same laps" if expert.laps == config.laps else "per lap",
        ratio=race_time / expert_s if result.finished else None,
        limit_s=limit_s,
        ended="finished" if result.finished else ended,
        laps_done=laps_done,
        distance_m=distance,
        progress_m=progress,
        progress_frac=progress / (config.laps * expert.lap_length_m),
        expert_to_progress_s=expert.time_to(progress),
        start_clock_s=start.time_s,
        policy_fps=stats.policy_fps,
        frames=len(until),
        rescues=stats.rescues,
    )
    return run, (times, _unwrap(dist, expert.lap_length_m))


def _unwrap(distance: np.ndarray, lap_m: float) -> np.ndarray:
    """In-lap distances → distance along the race (laps as in laps_and_distance)."""
    if len(distance) == 0:
        return distance
    step = np.diff(distance)
    laps = np.concatenate(
        [[0], np.cumsum((step < -0.5 * lap_m).astype(int) - (step > 0.5 * lap_m))]
    )
    return distance + laps * lap_m


class Stall:
    """Whether a race has stalled: less than STALL_M further along the race in
    STALL_S race seconds. Distances are the race log's in-lap ones, unwrapped
    at the line by :func:`_lap_change`; going backwards is no progress."""

    def __init__(self, lap_length_m: float) -> None:
        self.lap_m = lap_length_m
        self._last: float | None = None
        self._laps = 0
        self._ref: tuple[float, float] | None = None

    def update(self, frame: RaceFrame) -> bool:
        d = frame.distance_m
        if self._last is not None:
            self._laps += _lap_change(self._last, d, self.lap_m)
        self._last = d
        along = d + self._laps * self.lap_m
        if self._ref is None or along - self._ref[1] >= STALL_M:
            self._ref = (frame.time_s, along)
            return False
        if frame.time_s - self._ref[0] >= STALL_S:
            self._ref = (frame.time_s, along)  # the next STALL_S start after the rescue
            return True
        return False


def _watch(
    game: SuperTuxKart,
    stop: threading.Event,
    limit_s: float,
    wall_s: float,
    shots: list[np.ndarray] | None,
    out: dict[str, object],
    stall: Stall | None = None,
    rescue: Callable[[], None] | None = None,
) -> None:
    """Stops the drive at the finish, the limit, the wall-clock bound or the
    game's exit; grabs the GIF's frames meanwhile; asks for a rescue when the
    race has stalled. Runs on its own thread."""
    from kartdata.devices import ScreenCapture

    ended: Ended = "window closed"
    deadline = time.monotonic() + wall_s
    capture = ScreenCapture(game.display) if shots is not None else None
    try:
        region = game.wait_window() if capture is not None else None
        while not stop.is_set():
            frame = game.log.latest if game.log is not None else None
            if frame is not None:
                out["clock"] = frame.time_s
                if stall is not None and rescue is not None and stall.update(frame):
                    rescue()
            if game.finish() is not None:
                ended = "finished"
                break
            if frame is not None and frame.time_s >= limit_s:
                ended = "limit"
                break
            if game.proc is None or game.proc.poll() is not None:
                ended = "game exited"
                break
            if time.monotonic() >= deadline:
                ended = "wall-clock bound"
                break
            if region is not None and shots is not None and len(shots) < GIF_MAX_FRAMES:
                shots.append(_small(capture.grab(region)))  # type: ignore[union-attr]
            stop.wait(1.0 / GIF_FPS)
    except BaseException as e:  # handed to the main thread, which raises it
        out["error"] = e
    finally:
        out["ended"] = ended
        stop.set()
        if capture is not None:
            capture.close()


def _small(frame: np.ndarray) -> np.ndarray:
    """At most 320 px wide: the GIF stays small at any window size."""
    if frame.shape[1] <= 320:
        return frame
    from PIL import Image

    h = round(frame.shape[0] * 320 / frame.shape[1])
    return np.asarray(Image.fromarray(frame).resize((320, h), Image.Resampling.BILINEAR))


def write_plot(report: EvaluateReport, path: Path) -> Path:
    """Left: each track's result against the expert (time ratio, or the share
    of the race reached). Right: distance along the race against race time,
    model (solid) and expert (dashed), with the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(report.runs))
    for k, r in enumerate(report.runs):
        value = r.ratio if r.ratio is not None else r.progress_frac
        colour = "tab:green" if r.finished else "tab:red"
        bars.bar(k, value, 0.6, color=colour)
        bars.annotate(
            f"{r.ratio:.2f}x" if r.ratio is not None else f"{100 * r.progress_frac:.0f}%",
            (k, value),
            ha="center",
            va="bottom",
        )
    bars.axhline(1.0, color="black", lw=0.8, ls="--")
    bars.set_xticks(x, [r.track for r in report.runs], rotation=20)
    bars.set_ylabel("time / expert (green) · share of race (red)")
    bars.set_title(f"{report.config.laps} lap(s), limit {report.config.limit_factor:g}x expert")
    for k, r in enumerate(report.runs):
        colour = f"C{k}"
        times, dist = report.traces[r.track]
        curves.plot(times, dist, color=colour, label=f"{r.track} model")
        e = report.experts[r.track]
        end = r.laps * e.lap_length_m
        keep = e.progress_m <= end
        curves.plot(e.times_s[keep], e.progress_m[keep], color=colour, ls="--",
                    label=f"{r.track} expert")  # fmt: skip
        curves.axvline(r.limit_s, color=colour, lw=0.6, ls=":")
    curves.set_xlabel("race time (s)")
    curves.set_ylabel("distance along the race (m)")
    curves.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def save_table(report: EvaluateReport, out: Path) -> tuple[Path, Path]:
    rows = [asdict(r) for r in report.runs]
    c = report.config
    meta = {
        "model": c.model,
        "tracks": list(c.tracks),
        "laps": c.laps,
        "limit_factor": c.limit_factor,
        "kart": c.kart or "the expert's",
        "window": c.settings.screensize,
        "gif": str(report.gif) if report.gif else None,
        "plot": str(report.plot) if report.plot else None,
    }
    js = out / "evaluate.json"
    js.write_text(json.dumps({**meta, "runs": rows}, indent=1) + "\n")
    cs = out / "evaluate.csv"
    with cs.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["track"])
        w.writeheader()
        w.writerows(rows)
    return js, cs
