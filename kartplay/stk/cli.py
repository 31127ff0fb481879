"""``kartplay stk``: run SuperTuxKart for recording or driving.

``kartplay stk race`` starts a time trial (headless on its own Xvfb unless
``--display`` is given), prints where it runs once the race clock starts, a
status line each second (race clock, distance along the lap, the game's
frames/s), and the result when it ends: at the finish, after ``--seconds``,
on Ctrl-C or SIGTERM. Point ``kartdata record --display`` or ``kartplay
drive-window --display`` at the display it prints.
``kartplay stk keymap FILE`` writes the key map for those two commands.
``kartplay stk evaluate MODEL --tracks …`` drives time trials with an exported
model and scores them against the shipped replays' experts
(:mod:`kartplay.stk.evaluate`).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer

from kartdata import clikit
from kartplay.rescue import RescueConfig
from kartplay.stk.config import GameSettings
from kartplay.stk.evaluate import EvaluateConfig
from kartplay.stk.game import RaceResult, SuperTuxKart, TimeTrial
from kartplay.stk.keys import RESCUE_BUTTON

stk_app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

_RACE = TimeTrial()
_SIZE = GameSettings()


@stk_app.command()
def race(
    track: str = typer.Option(_RACE.track, help="A race track of the installed game."),
    laps: int = typer.Option(_RACE.laps, help="Laps of the time trial."),
    kart: str = typer.Option(_RACE.kart, help="The kart."),
    difficulty: int = typer.Option(_RACE.difficulty, help="0 novice … 3 supertux."),
    width: int = typer.Option(_SIZE.width, help="Window width."),
    height: int = typer.Option(_SIZE.height, help="Window height."),
    display: str | None = typer.Option(
        None, help="X display to open the window on (default: a private Xvfb)."
    ),
    seconds: float | None = typer.Option(None, help="End the race after this many seconds."),
    log: Path | None = typer.Option(None, help="Copy the game's output to this file."),
) -> None:
    """Start a time trial and report it until it ends."""
    config = TimeTrial(track, laps, kart, difficulty, GameSettings(width, height))
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with SuperTuxKart(config, display=display, log_file=log) as game:
            game.wait_race()
            region = game.wait_window()
            typer.echo(
                f"racing: {track}, {laps} lap(s), {kart}; display {game.display}, window {region}",
                err=True,
            )
            result = _watch(game, stop, seconds)
    finally:
        signal.signal(signal.SIGTERM, previous)
    state = "finished" if result.finished else "not finished"
    typer.echo(
        f"{state}: race time {result.time_s:.3f} s, distance {result.distance_m:.1f} m "
        f"into the lap, {result.frames} frames"
    )


def _watch(game: SuperTuxKart, stop: threading.Event, seconds: float | None) -> RaceResult:
    assert game.log is not None
    end = time.monotonic() + seconds if seconds is not None else None
    n0, t0 = game.log.frames, time.monotonic()
    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            if game.finish() is not None:
                break
            if game.proc is None or game.proc.poll() is not None:
                break  # the game was closed: report what it got to
            stop.wait(1.0)
            f = game.frame()
            now = time.monotonic()
            fps = (game.log.frames - n0) / (now - t0)
            n0, t0 = game.log.frames, now
            typer.echo(
                f"race {f.time_s:7.2f} s | {f.distance_m:7.1f} m | game {fps:4.1f} fps", err=True
            )
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the race like --seconds; the game ends on leaving the with
    return game.result()


@stk_app.command()
def keymap(out: Path = typer.Argument(..., help="Key map file to write (JSON).")) -> None:
    """Write the key map between kartkit's pad and the game's keys."""
    from kartplay.stk.keys import write_keymap

    typer.echo(str(write_keymap(out)))


@stk_app.command()
def evaluate(
    model: str = typer.Argument(..., help="Exported model directory (kartmodel export)."),
    tracks: str = typer.Option(..., help="Comma-separated race tracks, e.g. lighthouse,sandtrack."),
    laps: int = typer.Option(_RACE.laps, help="Laps of each time trial."),
    limit_factor: float = typer.Option(
        clikit.default(EvaluateConfig, "limit_factor"),
        help="End a run at this multiple of the expert's time.",
    ),
    out: Path = typer.Option(
        clikit.default(EvaluateConfig, "out"), help="Directory for the table, GIF, plot."
    ),
    width: int = typer.Option(_SIZE.width, help="Window width."),
    height: int = typer.Option(_SIZE.height, help="Window height."),
    rescue: bool = typer.Option(
        True, help="Press the game's rescue when the kart is stuck or stalls (as a player does)."
    ),
    kart: str | None = typer.Option(
        None, help="The kart to drive (default: on each track, the expert replay's)."
    ),
) -> None:
    """Drive time trials with MODEL; per track: finished, time, the expert's, ratio, progress."""
    from kartplay.stk.evaluate import evaluate as run_evaluation

    config = EvaluateConfig(
        model,
        tuple(t.strip() for t in tracks.split(",")),
        laps=laps,
        limit_factor=limit_factor,
        out=out,
        kart=kart,
        settings=GameSettings(width, height),
        rescue=RescueConfig(RESCUE_BUTTON if rescue else None),
    )
    report = run_evaluation(config, status=lambda line: typer.echo(line, err=True))
    typer.echo(report.table())
    typer.echo(
        f"table: {report.table_json} {report.table_csv}; plot: {report.plot}; gif: {report.gif}"
    )


@stk_app.command()
def demonstrate(
    out: Path = typer.Option(..., help="Directory for the sessions, one per replay."),
    replays: list[Path] | None = typer.Argument(
        None, help="Replay files (default: every shipped race replay)."
    ),
    seconds: float | None = typer.Option(
        None, help="Record this many game seconds of each race (default: the whole race)."
    ),
) -> None:
    """Record the game's ghost replays of expert drives as labelled native sessions."""
    from kartplay.stk.demonstrate import record_replays

    for result in record_replays(out, replays or None, seconds):
        typer.echo(
            f"{result.session}: {result.frames} frames, {result.timed} with a game time "
            f"({result.timed_share:.1%} of the racing frames), "
            f"game time {result.first_time_s:.2f}-{result.last_time_s:.2f} s"
        )
