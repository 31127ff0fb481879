"""``kartplay``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from kartdata import clikit
from kartplay.emuframes import EmuRecordConfig
from kartplay.override import CorrectionConfig
from kartplay.policy import PolicyConfig
from kartplay.protocol import DEFAULT_PORT, ServerConfig
from kartplay.rescue import RescueConfig
from kartplay.serve import ServeOptions
from kartplay.sim.ablation import AblationConfig
from kartplay.sim.collect import PerturbConfig, SimRecordConfig
from kartplay.sim.demo import DemoConfig
from kartplay.sim.drive import DriveConfig
from kartplay.sim.env import parse_seeds
from kartplay.stk.cli import stk_app

if TYPE_CHECKING:
    from kartmodel.models import ModelName
    from kartplay.policy import Selection
    from kartplay.protocol import Mode
    from kartplay.serve import FrameSource

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartplay command-line tool."""


# -- serve (issue 6) ----------------------------------------------------------

_SERVER = ServerConfig()
_POLICY = PolicyConfig()
_CORRECTIONS = CorrectionConfig()
_RESCUE = RescueConfig()


def _serve(name: str) -> Any:
    return clikit.default(ServeOptions, name)


def _policy(
    axis_scale: float,
    deadzone: float,
    button_threshold: float,
    selection: str,
    smoothing: float,
    hold: list[str],
    seed: int | None,
) -> PolicyConfig:
    """The policy flags that serve and drive-window share, as their config."""
    return PolicyConfig(
        axis_scale=axis_scale,
        deadzone=deadzone,
        button_threshold=button_threshold,
        selection=cast("Selection", selection),
        smoothing=smoothing,
        hold=tuple(hold),
        seed=seed,
    )


def _button(text: str) -> int | str:
    """An override button flag: a raw SDL button number or a button name."""
    return int(text) if text.isdigit() else text


@app.command()
def serve(
    model: str = typer.Argument(
        None, help="Exported kartmodel artifact; omit with --replay.", show_default=False
    ),
    replay: list[str] = typer.Option(
        [], help="Serve a recording's pads in a loop instead of a model (once per controller)."
    ),
    host: str = typer.Option(_SERVER.host, help="Address to listen on."),
    port: int = typer.Option(
        _SERVER.port, help=f"TCP port (the plugin's default is {DEFAULT_PORT}; 0: any free)."
    ),
    mode: str = typer.Option(_SERVER.mode, help="free-run or lockstep."),
    polls_per_step: int = typer.Option(
        _SERVER.polls_per_step, help="Lockstep: plugin polls answered per agent step."
    ),
    step_timeout: float = typer.Option(
        _SERVER.step_timeout, help="Lockstep: longest wait for the agent (s)."
    ),
    max_connections: int = typer.Option(
        _SERVER.max_connections, help="Concurrent connections before 503."
    ),
    frames: str = typer.Option(
        _serve("frames"), help="Frames from the screen (--region/--window) or the emulator."
    ),
    frames_ring: str = typer.Option(
        _serve("frames_ring"), help="--frames emulator: the plugin's frame ring file."
    ),
    region: str = typer.Option(None, help="Screen region to capture, X,Y,W,H."),
    window: str = typer.Option(None, help="Capture the X11 window whose title contains this."),
    window_wait: float = typer.Option(
        _serve("window_wait"), help="Seconds to wait at start for --window."
    ),
    max_fps: float = typer.Option(
        _serve("max_fps"), help="Free-run: most agent steps a second (0: no cap)."
    ),
    selection: str = typer.Option(
        _POLICY.selection, help="Class models: sample, argmax or expected."
    ),
    axis_scale: float = typer.Option(
        _POLICY.axis_scale, help="Continuous models: stick = output x this."
    ),
    deadzone: float = typer.Option(_POLICY.deadzone, help="Continuous models: stick 0 below this."),
    button_threshold: float = typer.Option(
        _POLICY.button_threshold, help="Continuous models: press at this output."
    ),
    smoothing: float = typer.Option(
        _POLICY.smoothing, help="Weight of past outputs (0 = none, <1)."
    ),
    hold: list[str] = typer.Option([], help="Button always held, e.g. --hold a (gas)."),
    seed: int = typer.Option(None, help="Seed of the weighted random choice."),
    override_pad: int = typer.Option(
        None, help="Gamepad (SDL index) that takes controller 0 over while its button is held."
    ),
    override_button: str = typer.Option(
        str(_serve("override_button")),
        help="Gamepad button of the override: an SDL controller button name or a number.",
    ),
    human_pad: int = typer.Option(None, help="Gamepad (SDL index) that drives controller 1."),
    record_corrections: Path = typer.Option(
        None, help="Write every takeover as a native session tagged recovery under this dir."
    ),
    correction_fps: float = typer.Option(
        _CORRECTIONS.fps, help="Frame rate of correction sessions."
    ),
    game: str = typer.Option(_CORRECTIONS.game, help="Correction sessions: game."),
    track: str = typer.Option(_CORRECTIONS.track, help="Correction sessions: track."),
    player: str = typer.Option(_CORRECTIONS.player, help="Correction sessions: player."),
    status: bool = typer.Option(_serve("status"), help="Print a status line once a second."),
) -> None:
    """Serve pads to the emulator plugin (input-bot protocol) from a model or a recording."""
    from kartplay.serve import run

    run(
        ServeOptions(
            model=model,
            replay=tuple(replay),
            server=ServerConfig(
                host=host,
                port=port,
                mode=cast("Mode", mode),
                polls_per_step=polls_per_step,
                step_timeout=step_timeout,
                max_connections=max_connections,
            ),
            frames=cast("FrameSource", frames),
            frames_ring=frames_ring,
            region=region,
            window=window,
            window_wait=window_wait,
            max_fps=max_fps,
            policy=_policy(
                axis_scale, deadzone, button_threshold, selection, smoothing, hold, seed
            ),
            override_pad=override_pad,
            override_button=_button(override_button),
            human_pad=human_pad,
            corrections=CorrectionConfig(
                None if record_corrections is None else Path(record_corrections),
                correction_fps,
                game,
                track,
                player,
            ),
            status=status,
        )
    )


# -- record-emulator (issue 17): the emulator's own frames, the exact pad ------


def _record(name: str) -> Any:
    return clikit.default(EmuRecordConfig, name)


@app.command("record-emulator")
def record_emulator(
    out: str = typer.Argument(..., help="New native session directory."),
    pad: int = typer.Option(0, help="Gamepad (SDL index) the human plays with."),
    mapping: Path = typer.Option(None, help="Gamepad mapping file (overrides SDL's database)."),
    ring: str = typer.Option(_record("ring"), help="The plugin's frame ring (KARTBOT_FRAMES)."),
    every: int = typer.Option(_record("every"), help="Keep every k-th frame (1: all 60 a second)."),
    host: str = typer.Option(_SERVER.host, help="Address the plugin polls for the pad."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port the plugin polls."),
    game: str = typer.Option(_record("game"), help="Session metadata: game."),
    track: str = typer.Option(_record("track"), help="Session metadata: track."),
    player: str = typer.Option(_record("player"), help="Session metadata: player."),
    image_format: str = typer.Option(_record("image_format"), help="png or jpg."),
    wait: float = typer.Option(_record("wait_s"), help="Seconds to wait for the first frame."),
    max_frames: int = typer.Option(
        _record("max_frames"), help="Stop after this many frames (0: when the emulator stops)."
    ),
) -> None:
    """Record a human playing from the emulator's own frames: the pad is served
    to the plugin (free-run) and every frame is stored with the exact pad the
    game read for it. Start the emulator with KARTBOT_FRAMES set."""
    import signal
    import threading

    from kartdata.devices.gamepad import Gamepad, PadMapping
    from kartplay.emuframes import record_with_pad

    cfg = EmuRecordConfig(
        out=out,
        ring=ring,
        every=every,
        game=game,
        track=track,
        player=player,
        image_format=image_format,
        wait_s=wait,
        max_frames=max_frames,
    )
    source = Gamepad(pad, PadMapping.load(mapping) if mapping else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    r = record_with_pad(
        cfg,
        source,
        ServerConfig(host=host, port=port),
        stop=stop,
        on_ready=lambda a: typer.echo(
            f"kartplay record-emulator: serving the pad on {a[0]}:{a[1]}, frames from {ring}"
        ),
    )
    typer.echo(
        f"{r.path}: {r.frames_written} frames (game frames {r.first_frame}..{r.last_frame}),"
        f" {r.frames_lost} lost"
    )


# -- sim: record, drive, demo (issue 7) ---------------------------------------

sim_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The CarRacing-v3 simulator."
)
app.add_typer(sim_app, name="sim")
app.add_typer(stk_app, name="stk", help="SuperTuxKart: a time trial to record or drive.")

_RECORD = SimRecordConfig()
_PERTURB = PerturbConfig()
_DRIVE = DriveConfig()
#: ``sim drive`` seeds the policy's random choice, so that a drive repeats.
SIM_DRIVE_SEED = 0


def _seeds(seeds: tuple[int, ...]) -> str:
    """Seeds as a flag value (:func:`~kartplay.sim.env.parse_seeds` reads it back)."""
    return ",".join(map(str, seeds))


@sim_app.command("record")
def sim_record(
    out: Path = typer.Option(..., "--out", help="Directory to write sessions into."),
    seeds: str = typer.Option("0-7", help="Track seeds: 1,2,3 or 100-115."),
    steps: int = typer.Option(_RECORD.steps, help="Simulator steps per track (50 per second)."),
    every: int = typer.Option(_RECORD.every, help="Record every k-th step."),
    perturb: float = typer.Option(_PERTURB.rate, help="Pushes off the line per second (0: clean)."),
    push_s: float = typer.Option(_PERTURB.push_s, help="Length of one push (s)."),
    strength: float = typer.Option(_PERTURB.strength, help="Steer of a push, 0..1."),
    settle_s: float = typer.Option(
        _PERTURB.settle_s, help="Correction after a push tagged recovery (s)."
    ),
    overspeed: float = typer.Option(
        _PERTURB.overspeed,
        help="Share of pushes that hold the gas instead of steering (too fast into a bend).",
    ),
    overspeed_s: float = typer.Option(
        _PERTURB.overspeed_s, help="Length of an overspeed push (s)."
    ),
    policy: str = typer.Option(
        None, help="Exported model that drives while the expert labels (DAgger)."
    ),
    workers: int = typer.Option(0, help="Processes (0: one per core)."),
    schedule_seed: int = typer.Option(_RECORD.seed, help="Seed of the push schedule."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Drive the expert (or a model, labelled by the expert) and record native sessions."""
    from kartplay.sim.collect import collect

    config = SimRecordConfig(
        steps=steps,
        every=every,
        perturb=PerturbConfig(
            rate=perturb,
            push_s=push_s,
            strength=strength,
            settle_s=settle_s,
            overspeed=overspeed,
            overspeed_s=overspeed_s,
        ),
        policy=policy,
        seed=schedule_seed,
    )
    reports = collect(out, parse_seeds(seeds), config, workers or None)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=1))
        return
    for r in reports:
        typer.echo(
            f"{r.path}: {r.frames} frames ({r.recovery_frames} recovery), "
            f"{r.driver} score {r.score:.1f}, {r.tiles} tiles"
        )


@sim_app.command("drive")
def sim_drive(
    model: str = typer.Argument(..., help="Exported model directory (kartmodel export)."),
    seeds: str = typer.Option(_seeds(_DRIVE.seeds), help="Track seeds: 11,12,13 or 100-115."),
    steps: int = typer.Option(_DRIVE.steps, help="Simulator steps per track (50 per second)."),
    gif: Path = typer.Option(None, help="Animated GIF of the first seed's run."),
    plot: Path = typer.Option(None, help="PNG plot of the scores."),
    report: Path = typer.Option(None, help="Also save the JSON report here."),
    expert: bool = typer.Option(
        _DRIVE.with_expert, "--expert/--no-expert", help="Score the expert too."
    ),
    selection: str = typer.Option(
        _POLICY.selection, help="Class models: sample, argmax or expected."
    ),
    smoothing: float = typer.Option(
        _POLICY.smoothing, help="Moving-average weight of past outputs, 0..1."
    ),
    deadzone: float = typer.Option(_POLICY.deadzone, help="Stick values closer to 0 become 0."),
    axis_scale: float = typer.Option(_POLICY.axis_scale, help="Multiply the predicted stick."),
    hold: str = typer.Option("", help="Buttons always pressed, e.g. a (gas)."),
    seed: int = typer.Option(SIM_DRIVE_SEED, help="Seed of weighted random selection."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Drive a model on track seeds and compare it with the expert."""
    from kartplay import policy as policy_mod
    from kartplay.sim.drive import drive, save_report

    pol = policy_mod.load(
        model,
        PolicyConfig(
            axis_scale=axis_scale,
            deadzone=deadzone,
            selection=cast("Selection", selection),
            smoothing=smoothing,
            hold=tuple(b for b in hold.split(",") if b),
            seed=seed,
        ),
    )
    result = drive(
        pol,
        DriveConfig(seeds=parse_seeds(seeds), steps=steps, gif=gif, plot=plot, with_expert=expert),
    )
    if report:
        save_report(result, report)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=1))
        return
    typer.echo(result.table())
    for label, path in (("video", result.gif), ("plot", result.plot)):
        if path:
            typer.echo(f"{label}: {path}")


@sim_app.command("ablation")
def sim_ablation(
    dataset: str = typer.Argument(..., help="Dataset (kartdata shard) of simulator sessions."),
    out: Path = typer.Option(..., "--out", help="Directory for runs, models and reports."),
    seeds: str = typer.Option(
        _seeds(clikit.default(AblationConfig, "seeds")), help="Unseen track seeds to score on."
    ),
    steps: int = typer.Option(
        clikit.default(AblationConfig, "steps"), help="Simulator steps per track."
    ),
    variants: str = typer.Option(
        ",".join(clikit.default(AblationConfig, "variants")), help="Variants to train and drive."
    ),
    epochs: int = typer.Option(clikit.default(AblationConfig, "epochs")),
    model: str = typer.Option(clikit.default(AblationConfig, "model")),
    train_seeds: str = typer.Option(
        _seeds(clikit.default(AblationConfig, "train_seeds")),
        help="Training seeds; each variant trains once per seed.",
    ),
) -> None:
    """Train with balance/recovery/smoothing on and off; print closed-loop scores."""
    from kartplay.sim.ablation import run_ablation, table

    rows = run_ablation(
        AblationConfig(
            dataset,
            out,
            parse_seeds(seeds),
            steps,
            cast("ModelName", model),
            epochs,
            train_seeds=parse_seeds(train_seeds),
            variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        ),
        echo=lambda s: typer.echo(s, err=True),
    )
    typer.echo(table(rows))


_DEMO_RECORD: SimRecordConfig = clikit.default(DemoConfig, "record")


@app.command()
def demo(
    out: Path = typer.Option(
        clikit.default(DemoConfig, "out"), "--out", help="Directory for everything it makes."
    ),
    rounds: int = typer.Option(
        len(clikit.default(DemoConfig, "dagger_seeds")),
        help="Learner-driven (DAgger) rounds after the offline one.",
    ),
    tracks: int = typer.Option(
        len(clikit.default(DemoConfig, "expert_seeds")),
        help="Tracks per recording kind (expert, perturbed, round).",
    ),
    steps: int = typer.Option(_DEMO_RECORD.steps, help="Simulator steps per recorded track."),
    eval_seeds: str = typer.Option(
        _seeds(clikit.default(DemoConfig, "eval_seeds")), help="Unseen track seeds to score on."
    ),
    epochs: int = typer.Option(
        clikit.default(DemoConfig, "epochs"), help="Training epochs per round."
    ),
    model: str = typer.Option(clikit.default(DemoConfig, "model"), help="kartmodel architecture."),
    workers: int = typer.Option(0, help="Processes per stage (0: one per core)."),
) -> None:
    """The main job on the CarRacing simulator: record → validate → shard → train →
    drive on unseen tracks, then learner-driven rounds; prints a summary table."""
    from kartplay.sim.demo import run_demo

    config = DemoConfig.sized(
        tracks,
        rounds,
        out=out,
        eval_seeds=parse_seeds(eval_seeds),
        record=dataclasses.replace(_DEMO_RECORD, steps=steps),
        epochs=epochs,
        model=cast("ModelName", model),
        workers=workers,
    )
    result = run_demo(config, echo=typer.echo)
    typer.echo("")
    typer.echo(result.table())


# -- drive-window (issue 14): any windowed game through a virtual device -------


def _drive(name: str) -> Any:
    from kartplay.window import DriveWindowConfig

    return clikit.default(DriveWindowConfig, name)


@app.command("drive-window")
def drive_window(
    model: str = typer.Argument(..., help="Exported kartmodel artifact."),
    window: str = typer.Option(..., help="The game window: a part of its title."),
    keymap: Path = typer.Option(None, help="Key map file (JSON, the recorder's shape)."),
    gamepad: bool = typer.Option(
        False, "--gamepad", help="Play on a uinput virtual gamepad instead of the keyboard."
    ),
    display: str = typer.Option(None, help="X display (default $DISPLAY)."),
    max_fps: float = typer.Option(
        _drive("max_fps"), help="Most policy steps a second (0: no cap)."
    ),
    min_pulse: float = typer.Option(
        _drive("pulse").min_pulse_s, help="Shortest key press or gap the game registers (s)."
    ),
    selection: str = typer.Option(
        _POLICY.selection, help="Class models: sample, argmax or expected."
    ),
    axis_scale: float = typer.Option(
        _POLICY.axis_scale, help="Continuous models: stick = output x this."
    ),
    deadzone: float = typer.Option(_POLICY.deadzone, help="Continuous models: stick 0 below this."),
    button_threshold: float = typer.Option(
        _POLICY.button_threshold, help="Continuous models: press at this output."
    ),
    smoothing: float = typer.Option(
        _POLICY.smoothing, help="Weight of past outputs (0 = none, <1)."
    ),
    hold: list[str] = typer.Option([], help="Button always held, e.g. --hold a (gas)."),
    seed: int = typer.Option(None, help="Seed of the weighted random choice."),
    window_wait: float = typer.Option(
        _drive("window_wait_s"), help="Seconds to wait for the window."
    ),
    override_pad: int = typer.Option(
        None, help="Gamepad (SDL index) that takes over while its button is held."
    ),
    override_button: str = typer.Option(
        str(_drive("override_button")), help="Its button: an SDL controller name or a number."
    ),
    override_key: str = typer.Option(None, help="Or a key (X keysym) that takes over while held."),
    record_corrections: Path = typer.Option(
        None, help="Write every takeover as a native session tagged recovery under this dir."
    ),
    correction_fps: float = typer.Option(
        _CORRECTIONS.fps, help="Frame rate of correction sessions."
    ),
    game: str = typer.Option(_CORRECTIONS.game, help="Correction sessions: game."),
    track: str = typer.Option(_CORRECTIONS.track, help="Correction sessions: track."),
    rescue_button: str = typer.Option(
        None, help="Pad button of the game's rescue (key map), pressed when the view stands still."
    ),
    rescue_after: float = typer.Option(
        _RESCUE.still_s, help="Seconds the view must stand still before a rescue."
    ),
    seconds: float = typer.Option(None, help="Stop after this many seconds."),
) -> None:
    """Drive a game window with a model through a virtual keyboard (XTEST) or gamepad (uinput)."""
    import sys

    from kartplay.keys import PulseConfig
    from kartplay.window import DriveWindowConfig
    from kartplay.window import drive_window as run_drive

    config = DriveWindowConfig(
        model=model,
        window=window,
        keymap=keymap,
        device="gamepad" if gamepad else "keyboard",
        display=display,
        policy=_policy(axis_scale, deadzone, button_threshold, selection, smoothing, hold, seed),
        pulse=PulseConfig(min_pulse_s=min_pulse),
        max_fps=max_fps,
        window_wait_s=window_wait,
        override_pad=override_pad,
        override_button=_button(override_button),
        override_key=override_key,
        corrections=CorrectionConfig(record_corrections, correction_fps, game, track),
        rescue=RescueConfig(rescue_button, still_s=rescue_after),
        max_seconds=seconds,
    )
    tty = sys.stderr.isatty()

    def status(line: str) -> None:
        sys.stderr.write(("\r\x1b[K" + line) if tty else line + "\n")
        sys.stderr.flush()

    stats = run_drive(config, status=status)
    if tty:
        sys.stderr.write("\n")
    typer.echo(
        f"{stats.ended}: {stats.steps} policy steps in {stats.elapsed_s:.1f} s "
        f"({stats.policy_fps:.1f} fps), capture→keys p50 {stats.latency_ms_p50:.1f} ms "
        f"p99 {stats.latency_ms_p99:.1f} ms (p50 capture {stats.capture_ms_p50:.1f}, "
        f"policy {stats.infer_ms_p50:.1f}, keys {stats.keys_ms_p50:.2f} ms; keys p99 "
        f"{stats.keys_ms_p99:.2f} ms), {stats.takeovers} takeover(s), {stats.rescues} rescue(s)"
        + (f" → {', '.join(stats.corrections)}" if stats.corrections else "")
    )


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
