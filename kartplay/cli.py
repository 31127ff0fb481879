"""``kartplay``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kartdata import clikit
from kartdata.errors import KartError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartplay command-line tool."""


# -- serve (issue 6) ----------------------------------------------------------


@app.command()
def serve(
    model: str = typer.Argument(
        None, help="Exported kartmodel artifact; omit with --replay.", show_default=False
    ),
    replay: list[str] = typer.Option(
        [], help="Serve a recording's pads in a loop instead of a model (once per controller)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8082, help="TCP port (the plugin's default is 8082; 0: any free)."),
    mode: str = typer.Option("free-run", help="free-run or lockstep."),
    polls_per_step: int = typer.Option(1, help="Lockstep: plugin polls answered per agent step."),
    step_timeout: float = typer.Option(2.0, help="Lockstep: longest wait for the agent (s)."),
    max_connections: int = typer.Option(64, help="Concurrent connections before 503."),
    region: str = typer.Option(None, help="Screen region to capture, X,Y,W,H."),
    window: str = typer.Option(None, help="Capture the X11 window whose title contains this."),
    window_wait: float = typer.Option(10.0, help="Seconds to wait at start for --window."),
    max_fps: float = typer.Option(0.0, help="Free-run: most agent steps a second (0: no cap)."),
    selection: str = typer.Option("sample", help="Class models: sample, argmax or expected."),
    axis_scale: float = typer.Option(1.0, help="Continuous models: stick = output x this."),
    deadzone: float = typer.Option(0.0, help="Continuous models: stick 0 below this."),
    button_threshold: float = typer.Option(0.5, help="Continuous models: press at this output."),
    smoothing: float = typer.Option(0.0, help="Weight of past outputs (0 = none, <1)."),
    hold: list[str] = typer.Option([], help="Button always held, e.g. --hold a (gas)."),
    seed: int = typer.Option(None, help="Seed of the weighted random choice."),
    override_pad: int = typer.Option(
        None, help="Gamepad (SDL index) that takes controller 0 over while its button is held."
    ),
    override_button: int = typer.Option(6, help="SDL button of the override (6: Back)."),
    human_pad: int = typer.Option(None, help="Gamepad (SDL index) that drives controller 1."),
    record_corrections: str = typer.Option(
        None, help="Write every takeover as a native session tagged recovery under this dir."
    ),
    correction_fps: float = typer.Option(15.0, help="Frame rate of correction sessions."),
    game: str = typer.Option("unknown", help="Correction sessions: game."),
    track: str = typer.Option("unknown", help="Correction sessions: track."),
    player: str = typer.Option("human", help="Correction sessions: player."),
    status: bool = typer.Option(True, help="Print a status line once a second."),
) -> None:
    """Serve pads to the emulator plugin (input-bot protocol) from a model or a recording."""
    from kartplay import serve as serving
    from kartplay.policy import PolicyConfig

    serving.run(
        serving.ServeOptions(
            model=model,
            replay=tuple(replay),
            host=host,
            port=port,
            mode=mode,
            polls_per_step=polls_per_step,
            step_timeout=step_timeout,
            max_connections=max_connections,
            region=region,
            window=window,
            window_wait=window_wait,
            max_fps=max_fps,
            policy=PolicyConfig(
                axis_scale=axis_scale,
                deadzone=deadzone,
                button_threshold=button_threshold,
                selection=selection,  # type: ignore[arg-type]
                smoothing=smoothing,
                hold=tuple(hold),
                seed=seed,
            ),
            override_pad=override_pad,
            override_button=override_button,
            human_pad=human_pad,
            record_corrections=record_corrections,
            correction_fps=correction_fps,
            game=game,
            track=track,
            player=player,
            status=status,
        )
    )


# -- sim: record, drive, demo (issue 7) ---------------------------------------

sim_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The CarRacing-v3 simulator."
)
app.add_typer(sim_app, name="sim")


def _policy_config(
    selection: str, smoothing: float, deadzone: float, axis_scale: float, hold: str, seed: int
):  # -> PolicyConfig
    from kartplay.policy import PolicyConfig

    return PolicyConfig(
        axis_scale=axis_scale,
        deadzone=deadzone,
        selection=selection,  # type: ignore[arg-type]
        smoothing=smoothing,
        hold=tuple(b for b in hold.split(",") if b),
        seed=seed,
    )


@sim_app.command("record")
def sim_record(
    out: Path = typer.Option(..., "--out", help="Directory to write sessions into."),
    seeds: str = typer.Option("0-7", help="Track seeds: 1,2,3 or 100-115."),
    steps: int = typer.Option(1000, help="Simulator steps per track (50 per second)."),
    every: int = typer.Option(1, help="Record every k-th step."),
    perturb: float = typer.Option(0.0, help="Pushes off the line per second (0: clean)."),
    push_s: float = typer.Option(0.25, help="Length of one push (s)."),
    strength: float = typer.Option(0.5, help="Steer of a push, 0..1."),
    settle_s: float = typer.Option(1.0, help="Correction after a push tagged recovery (s)."),
    overspeed: float = typer.Option(
        0.0, help="Share of pushes that hold the gas instead of steering (too fast into a bend)."
    ),
    overspeed_s: float = typer.Option(1.5, help="Length of an overspeed push (s)."),
    policy: str = typer.Option(
        None, help="Exported model that drives while the expert labels (DAgger)."
    ),
    workers: int = typer.Option(0, help="Processes (0: one per core)."),
    schedule_seed: int = typer.Option(0, help="Seed of the push schedule."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Drive the expert (or a model, labelled by the expert) and record native sessions."""
    from kartplay.sim.collect import PerturbConfig, SimRecordConfig, collect
    from kartplay.sim.env import parse_seeds

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
    seeds: str = typer.Option("11,12,13,14,15", help="Track seeds: 11,12,13 or 100-115."),
    steps: int = typer.Option(1000, help="Simulator steps per track (50 per second)."),
    gif: Path = typer.Option(None, help="Animated GIF of the first seed's run."),
    plot: Path = typer.Option(None, help="PNG plot of the scores."),
    report: Path = typer.Option(None, help="Also save the JSON report here."),
    expert: bool = typer.Option(True, "--expert/--no-expert", help="Score the expert too."),
    selection: str = typer.Option("sample", help="Class models: sample, argmax or expected."),
    smoothing: float = typer.Option(0.0, help="Moving-average weight of past outputs, 0..1."),
    deadzone: float = typer.Option(0.0, help="Stick values closer to 0 become 0."),
    axis_scale: float = typer.Option(1.0, help="Multiply the predicted stick."),
    hold: str = typer.Option("", help="Buttons always pressed, e.g. a (gas)."),
    seed: int = typer.Option(0, help="Seed of weighted random selection."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Drive a model on track seeds and compare it with the expert."""
    from kartplay import policy as policy_mod
    from kartplay.sim.drive import DriveConfig, drive, save_report
    from kartplay.sim.env import parse_seeds

    pol = policy_mod.load(
        model, _policy_config(selection, smoothing, deadzone, axis_scale, hold, seed)
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
    seeds: str = typer.Option("11-15", help="Unseen track seeds to score on."),
    steps: int = typer.Option(1000, help="Simulator steps per track."),
    variants: str = typer.Option(
        "all,no-balance,no-recovery,no-smoothing,none", help="Variants to train and drive."
    ),
    epochs: int = typer.Option(4),
    model: str = typer.Option("sepnet"),
    train_seeds: str = typer.Option(
        "1,2,3", help="Training seeds; each variant trains once per seed."
    ),
) -> None:
    """Train with balance/recovery/smoothing on and off; print closed-loop scores."""
    from kartplay.sim.ablation import AblationConfig, run_ablation, table, variant_args
    from kartplay.sim.env import parse_seeds

    names = tuple(v.strip() for v in variants.split(",") if v.strip())
    for v in names:
        variant_args(v)  # unknown names fail before any training
    rows = run_ablation(
        AblationConfig(
            dataset,
            out,
            parse_seeds(seeds),
            steps,
            model,
            epochs,
            train_seeds=parse_seeds(train_seeds),
            variants=names,
        ),
        echo=lambda s: typer.echo(s, err=True),
    )
    typer.echo(table(rows))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Directory for everything it makes."),
    rounds: int = typer.Option(2, help="Learner-driven (DAgger) rounds after the offline one."),
    tracks: int = typer.Option(8, help="Tracks per recording kind (expert, perturbed, round)."),
    steps: int = typer.Option(1000, help="Simulator steps per recorded track."),
    eval_seeds: str = typer.Option("11-15", help="Unseen track seeds to score on."),
    epochs: int = typer.Option(4, help="Training epochs per round."),
    model: str = typer.Option("sepnet", help="kartmodel architecture."),
    workers: int = typer.Option(0, help="Processes per stage (0: one per core)."),
) -> None:
    """The main job on the CarRacing simulator: record → validate → shard → train →
    drive on unseen tracks, then learner-driven rounds; prints a summary table."""
    from kartplay.sim.demo import DemoConfig, run_demo
    from kartplay.sim.env import parse_seeds

    base = 100
    config = DemoConfig(
        out=out,
        expert_seeds=tuple(range(base, base + tracks)),
        perturbed_seeds=tuple(range(base + tracks, base + 2 * tracks)),
        dagger_seeds=tuple(
            tuple(range(base + (2 + r) * tracks, base + (3 + r) * tracks)) for r in range(rounds)
        ),
        eval_seeds=parse_seeds(eval_seeds),
        steps=steps,
        epochs=epochs,
        model=model,
        workers=workers,
    )
    used = set(config.expert_seeds + config.perturbed_seeds).union(*config.dagger_seeds)
    if used & set(config.eval_seeds):
        raise KartError(f"evaluation seeds {sorted(used & set(config.eval_seeds))} were recorded")
    result = run_demo(config, echo=typer.echo)
    typer.echo("")
    typer.echo(result.table())


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
