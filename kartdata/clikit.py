"""What the three command-line tools share: bad input is one line on stderr and
an exit code, never a traceback."""

from __future__ import annotations

import os
import sys
import warnings

import typer

from kartdata.errors import KartError


def run(app: typer.Typer) -> None:
    """Run a typer app, turning :class:`KartError` into ``error: …`` and its code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.showwarning = _one_line_warning
    try:
        app()
    except KartError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
    print(f"warning: {message}", file=sys.stderr)
