"""``kartplay``."""

from __future__ import annotations

import typer

from kartdata import clikit

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
    port: int = typer.Option(8082, help="TCP port (the plugin's default is 8082)."),
    mode: str = typer.Option("free-run", help="free-run or lockstep."),
    polls_per_step: int = typer.Option(1, help="Lockstep: plugin polls answered per agent step."),
    step_timeout: float = typer.Option(2.0, help="Lockstep: longest wait for the agent (s)."),
    max_connections: int = typer.Option(64, help="Concurrent connections before 503."),
    region: str = typer.Option(None, help="Screen region to capture, WxH+X+Y."),
    window: str = typer.Option(None, help="Capture the X11 window whose title contains this."),
    status: bool = typer.Option(True, help="Print a status line once a second."),
) -> None:
    """Serve pads to the emulator plugin (input-bot protocol) from a model or a recording."""
    from kartplay import serving

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
            status=status,
        )
    )


# -- sim: record, drive, demo (issue 7) ---------------------------------------


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
