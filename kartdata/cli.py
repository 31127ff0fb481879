"""``kartdata``: record, validate, shard, verify and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from kartdata import clikit

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartdata: recordings → validated, balanced, compressed TFRecord shards."""


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Directory to create the sample recordings in."),
    frames: int = typer.Option(300, help="Frames per recording."),
    sessions: int = typer.Option(
        2, help="Native sessions to make (plus one TensorKart, one CTR-AI)."
    ),
) -> None:
    """Make synthetic sample recordings in all three layouts (for trying the tools)."""
    from kartdata import synth

    out.mkdir(parents=True, exist_ok=True)
    for i in range(sessions):
        synth.make_native(out / f"native-{i}", frames, seed=i, recovery_share=0.2 if i % 2 else 0)
    synth.make_tensorkart(out / "tensorkart-0", frames, seed=100)
    synth.make_ctr(out / "ctr", min(frames, 500), seed=200)
    typer.echo(f"wrote {sessions + 2} recordings under {out}")


# -- record (issue 8) ---------------------------------------------------------

# -- validate (issue 3) -------------------------------------------------------

# -- shard, verify, info (issue 2) --------------------------------------------


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
