"""``kartplay``."""

from __future__ import annotations

import typer

from kartdata import clikit

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartplay command-line tool."""


# -- serve (issue 6) ----------------------------------------------------------

# -- sim: record, drive, demo (issue 7) ---------------------------------------


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
