"""``kartmodel``: train, evaluate and export driving models."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kartdata import clikit

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartmodel: Keras models trained on kartdata datasets, evaluated, exported."""


@app.command()
def train(
    dataset: str = typer.Argument(..., help="Dataset directory (made by `kartdata shard`)."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (or continue)."),
    model: str = typer.Option("pilotnet", help="pilotnet, categorical or sepnet."),
    targets: str = typer.Option(
        None, help="tensorkart, class3 or pad fields (x,a); default: the model's."
    ),
    loss: str = typer.Option(None, help="euclidean, mse or crossentropy; default: the model's."),
    height: int = typer.Option(None, help="Model input height (default: the model's)."),
    width: int = typer.Option(None, help="Model input width (default: the model's)."),
    crop_top: float = typer.Option(0.0, help="Fraction of the frame cut from the top."),
    crop_bottom: float = typer.Option(0.0, help="Fraction of the frame cut from the bottom."),
    epochs: int = typer.Option(None, help="Total epochs [default: 10; on --resume: as before]."),
    batch_size: int = typer.Option(64),
    steps_per_epoch: int = typer.Option(None, help="Default: one pass over the epoch plan."),
    val_steps: int = typer.Option(None, help="Default: the whole validation split."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
    schedule: str = typer.Option("cosine", help="cosine, exponential or constant."),
    warmup_epochs: float = typer.Option(0.0),
    monitor: str = typer.Option(
        None, help="val_ metric picking the best checkpoint (default val_balanced_accuracy)."
    ),
    balance: str = typer.Option(None, help="'uniform' gives each steering class the same share."),
    recovery_weight: float = typer.Option(1.0, help="Weight of recovery frames in sampling."),
    smooth: int = typer.Option(1, help="Odd window of frames averaged into the steering target."),
    lookahead: int = typer.Option(0, help="Train on the pad this many frames later."),
    augment: bool = typer.Option(True, "--augment/--no-augment"),
    val_fraction: float = typer.Option(0.1, help="Share of sessions held out (by hash)."),
    val_sessions: str = typer.Option(
        None,
        help="Comma-separated sessions held out instead: keys, key prefixes or recording names.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    seed: int = typer.Option(None, help="Seed weights, data order and augmentation."),
    deterministic: bool = typer.Option(False, help="Deterministic ops and data order (slower)."),
    mixed_precision: str = typer.Option("auto", help="auto (on with a GPU), on or off."),
    log_every: int = typer.Option(20, help="Progress line every N steps."),
    data_service: str = typer.Option(
        None,
        help="tf.data service dispatcher (host:port) that reads, decodes and augments "
        "(see README: Scaling out).",
    ),
) -> None:
    """Train a model on DATASET, streaming from the kartdata loader.

    With TF_CONFIG naming several workers, run this on each of them
    (MultiWorkerMirroredStrategy); each reads its own share of the shard files."""
    from kartmodel.config import DataOptions, TrainConfig
    from kartmodel.trainer import train as run_training

    config = None
    if not resume:
        config = TrainConfig(
            dataset=dataset,
            model=model,
            targets=targets,
            loss=loss,
            height=height,
            width=width,
            crop_top=crop_top,
            crop_bottom=crop_bottom,
            epochs=epochs or 10,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            val_steps=val_steps,
            learning_rate=lr,
            schedule=schedule,  # type: ignore[arg-type]
            warmup_epochs=warmup_epochs,
            monitor=monitor,
            seed=seed,
            deterministic=deterministic,
            mixed_precision=mixed_precision,  # type: ignore[arg-type]
            log_every=log_every,
            data=DataOptions(
                balance=balance,
                recovery_weight=recovery_weight,
                smooth=smooth,
                lookahead=lookahead,
                augment=augment,
                val_fraction=val_fraction,
                val_sessions=tuple(val_sessions.split(",")) if val_sessions else None,
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

    ev = run_evaluation(run, dataset, split, _which(checkpoint), batch_size)
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

    path = run_export(run, format, out, _which(checkpoint))
    typer.echo(f"exported {format} model to {path}")


def _which(checkpoint: str) -> str:  # type: ignore[return]
    from kartdata.errors import KartError

    if checkpoint not in ("best", "last"):
        raise KartError(f"--checkpoint {checkpoint!r} is not 'best' or 'last'")
    return checkpoint


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
