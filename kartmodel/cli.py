"""``kartmodel``: train, evaluate and export driving models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from kartdata import clikit
from kartdata.augment import AugmentConfig, parse_boxes
from kartdata.errors import KartError
from kartdata.split import SplitConfig
from kartdata.targets import TargetConfig
from kartmodel import models
from kartmodel.config import DataOptions, TrainConfig
from kartmodel.targets import TargetLayout

if TYPE_CHECKING:
    from kartmodel.artifact import Format
    from kartmodel.config import MixedPrecision, Schedule
    from kartmodel.models import LossName, ModelName
    from kartmodel.run import Which

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartmodel: Keras models trained on kartdata datasets, evaluated, exported."""


def _train(name: str) -> Any:
    return clikit.default(TrainConfig, name)


def _data(name: str) -> Any:
    return clikit.default(DataOptions, name)


def _augment(name: str) -> Any:
    return clikit.default(AugmentConfig, name)


def _augment_config(on: bool, turn: float, steer: float, keep: str) -> bool | AugmentConfig:
    if not turn:
        if keep or steer != _augment("turn_steer"):
            raise KartError("--turn-steer and --turn-keep shape the turn: they need --turn")
        return on
    if not on:
        raise KartError("--turn is an augmentation: it needs --augment")
    try:
        return AugmentConfig(turn=turn, turn_steer=steer, turn_keep=parse_boxes(keep))
    except ValueError as e:
        raise KartError(str(e)) from None


_SPLITS = SplitConfig()
_WINDOW = TargetConfig()


@app.command()
def train(
    dataset: str = typer.Argument(..., help="Dataset directory (made by `kartdata shard`)."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (or continue)."),
    model: str = typer.Option(_train("model"), help="pilotnet, categorical or sepnet."),
    targets: str = typer.Option(
        None, help="tensorkart, class3 or pad fields (x,a); default: the model's."
    ),
    loss: str = typer.Option(None, help="euclidean, mse or crossentropy; default: the model's."),
    height: int = typer.Option(None, help="Model input height (default: the model's)."),
    width: int = typer.Option(None, help="Model input width (default: the model's)."),
    crop_top: float = typer.Option(
        _train("crop_top"), help="Fraction of the frame cut from the top."
    ),
    crop_bottom: float = typer.Option(
        _train("crop_bottom"), help="Fraction of the frame cut from the bottom."
    ),
    epochs: int = typer.Option(
        None, help=f"Total epochs [default: {_train('epochs')}; on --resume: as before]."
    ),
    batch_size: int = typer.Option(_train("batch_size")),
    steps_per_epoch: int = typer.Option(None, help="Default: one pass over the epoch plan."),
    val_steps: int = typer.Option(None, help="Default: the whole validation split."),
    lr: float = typer.Option(_train("learning_rate"), "--lr", help="Peak learning rate."),
    schedule: str = typer.Option(_train("schedule"), help="cosine, exponential or constant."),
    warmup_epochs: float = typer.Option(_train("warmup_epochs")),
    monitor: str = typer.Option(
        None, help="val_ metric picking the best checkpoint (default val_balanced_accuracy)."
    ),
    balance: str = typer.Option(None, help="'uniform' gives each steering class the same share."),
    recovery_weight: float = typer.Option(
        _data("recovery_weight"), help="Weight of recovery frames in sampling."
    ),
    smooth: int = typer.Option(
        _WINDOW.smoothing, help="Odd window of frames averaged into the steering target."
    ),
    lookahead: int = typer.Option(
        _WINDOW.lookahead, help="Train on the pad this many frames later."
    ),
    augment: bool = typer.Option(_data("augment"), "--augment/--no-augment"),
    turn: float = typer.Option(
        _augment("turn"),
        help="Recovery views: slide a share of the views sideways by up to this fraction of "
        "their width and steer the label back (0: off).",
    ),
    turn_steer: float = typer.Option(
        _augment("turn_steer"), help="Steering added to the label at a slide of the whole --turn."
    ),
    turn_keep: str = typer.Option(
        "",
        help="Regions that move with the camera (own kart, HUD), kept in place when turning: "
        "'top,left,bottom,right;…' fractions of the model input.",
    ),
    val_fraction: float = typer.Option(
        _SPLITS.val_fraction, help="Share of sessions held out (by hash)."
    ),
    val_sessions: str = typer.Option(
        None,
        help="Comma-separated sessions held out instead: keys, key prefixes or recording names.",
    ),
    session_tags: str = typer.Option(
        None,
        "--session-tags",
        help="Comma-separated session tags: train and validate only on sessions carrying all "
        "of them (e.g. stk-replay).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    seed: int = typer.Option(None, help="Seed weights, data order and augmentation."),
    deterministic: bool = typer.Option(
        _train("deterministic"), help="Deterministic ops and data order (slower)."
    ),
    mixed_precision: str = typer.Option(
        _train("mixed_precision"), help="auto (on with a GPU), on or off."
    ),
    log_every: int = typer.Option(_train("log_every"), help="Progress line every N steps."),
    data_service: str = typer.Option(
        None,
        help="tf.data service dispatcher (host:port) that reads, decodes and augments "
        "(see README: Scaling out).",
    ),
) -> None:
    """Train a model on DATASET, streaming from the kartdata loader.

    With TF_CONFIG naming several workers, run this on each of them
    (MultiWorkerMirroredStrategy); each reads its own share of the shard files."""
    from kartmodel.trainer import train as run_training

    config = None
    if not resume:
        config = TrainConfig(
            dataset=dataset,
            model=cast("ModelName", model),
            loss=cast("LossName | None", loss),
            height=height,
            width=width,
            crop_top=crop_top,
            crop_bottom=crop_bottom,
            epochs=epochs or _train("epochs"),
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            val_steps=val_steps,
            learning_rate=lr,
            schedule=cast("Schedule", schedule),
            warmup_epochs=warmup_epochs,
            monitor=monitor,
            seed=seed,
            deterministic=deterministic,
            mixed_precision=cast("MixedPrecision", mixed_precision),
            log_every=log_every,
            data=DataOptions(
                targets=TargetConfig(
                    kind=TargetLayout.parse(
                        targets or models.defaults(model).targets
                    ).loader_targets,
                    smoothing=smooth,
                    lookahead=lookahead,
                ),
                splits=SplitConfig(
                    val_fraction=val_fraction,
                    val_sessions=tuple(val_sessions.split(",")) if val_sessions else None,
                    session_tags=tuple(session_tags.split(",")) if session_tags else (),
                ),
                balance=balance,
                recovery_weight=recovery_weight,
                augment=_augment_config(augment, turn, turn_steer, turn_keep),
            ),
        )
    result = run_training(
        config, out, resume=resume, epochs=epochs if resume else None, data_service=data_service
    )
    best = result.best
    summary = ", ".join(f"{k} {v:.4g}" for k, v in best.items() if k.startswith("val_"))
    typer.echo(f"{result.epochs} epoch(s) in {out}; best epoch {best.get('epoch')}: {summary}")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory."),
    dataset: str = typer.Argument(..., help="Dataset directory."),
    split: str = typer.Option("val", help="val (held-out sessions), train or all."),
    checkpoint: str = typer.Option("best", help="best or last."),
    batch_size: int = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Metrics per session and overall; saved under RUN/eval/."""
    from kartmodel.evaluation import evaluate as run_evaluation
    from kartmodel.evaluation import format_table

    ev = run_evaluation(run, dataset, split, cast("Which", checkpoint), batch_size)
    typer.echo(json.dumps(ev.to_json(), indent=1) if as_json else format_table(ev))


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run directory."),
    format: str = typer.Option("keras", "--format", help="keras, savedmodel or tflite."),
    out: Path = typer.Option(None, "--out", help="Default: RUN/export/<format>."),
    checkpoint: str = typer.Option("best", help="best or last."),
) -> None:
    """Write a model with its kartkit.json (input spec, targets, preprocessing version)."""
    from kartmodel.artifact import export as run_export

    path = run_export(run, cast("Format", format), out, cast("Which", checkpoint))
    typer.echo(f"exported {format} model to {path}")


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
