"""What the three command-line tools share: bad input is one line on stderr and
an exit code, never a traceback."""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import select
import sys
import threading
import warnings
from typing import Any

import typer

from kartdata.errors import KartError

# TensorFlow's C++ runtime logs through absl before any setting can silence it
# ("oneDNN custom operations are on", "Could not find cuda drivers", …). Users
# asked for one-line errors, so the CLIs drop exactly those lines.
_NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} \d+:\d+:\d+\.\d+ +\d+ [\w.]+:\d+\]"
    rb"|E\d{4} \d+:\d+:\d+\.\d+ +\d+ (cuda_\w+|cudart_stub)\.cc:\d+\])"
)


_MAYBE_NOISE = re.compile(rb"^(WARNING: All|[IWE]\d)")


def run(app: typer.Typer) -> None:
    """Run a typer app, turning :class:`KartError` into ``error: …`` and its code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not os.environ.get("KARTKIT_DEBUG"):
        _filter_native_stderr()
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


def _filter_native_stderr() -> None:
    """Route fd 2 through a pipe that drops TensorFlow's native start-up logs."""
    try:
        real = os.dup(2)
        r, w = os.pipe()
    except OSError:
        return
    os.dup2(w, 2)
    os.close(w)

    # The pump stops when told (``stop``), not only at EOF: a child that
    # inherited fd 2 and outlives us (multiprocessing's resource tracker does)
    # holds the pipe open, and waiting for its EOF added 2 s to every exit.
    stop_r, stop_w = os.pipe()

    def pump() -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([r, stop_r], [], [])
            if r not in ready:  # told to stop, and nothing is left to read
                break
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(ln + b"\n" for ln in lines if not _NATIVE_NOISE.match(ln))
            # A live status line ends in \r, not \n: pass it on at once unless
            # it may be the start of a log line still being written.
            if pending and not _MAYBE_NOISE.match(pending):
                out, pending = out + pending, b""
            if out:
                os.write(real, out)
        if pending and not _NATIVE_NOISE.match(pending):
            os.write(real, pending)

    t = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    t.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)
        os.write(stop_w, b"x")
        t.join(timeout=2)

    atexit.register(restore)


def default(config: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config``: a flag's
    default comes from its config, so the two cannot drift apart."""
    f = next(f for f in dataclasses.fields(config) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"{config.__name__}.{name} has no default")
