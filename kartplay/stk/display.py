"""A private headless X display (Xvfb), ended by its process id whatever happens.

``-displayfd``: the server writes its display number to a pipe once it accepts
connections, so there is no guessing of free numbers and no polling. The
server gets ``PR_SET_PDEATHSIG`` (see :mod:`kartplay.stk.procs`), so it dies
with the Python process even on a ``kill -9`` that leaves no ``finally`` to run.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

from kartdata.errors import KartError
from kartplay.stk.procs import end_process, start_process

#: How long Xvfb may take to accept connections.
XVFB_START_S = 30.0


class HeadlessDisplayError(KartError):
    """Xvfb is missing or did not start."""


class HeadlessDisplay:
    """``with HeadlessDisplay("640x480") as d: d.name`` → ``":N"``."""

    def __init__(self, size: str = "640x480", depth: int = 24) -> None:
        self.size = size
        self.depth = depth
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = ""

    def start(self) -> HeadlessDisplay:
        if shutil.which("Xvfb") is None:
            raise HeadlessDisplayError(
                "Xvfb is not installed (Debian: apt-get install xvfb; scripts/setup.sh does it)"
            )
        r, w = os.pipe()
        try:
            self.proc = start_process(
                [
                    "Xvfb",
                    "-displayfd",
                    str(w),
                    "-screen",
                    "0",
                    f"{self.size}x{self.depth}",
                    "-nolisten",
                    "tcp",
                ],
                pass_fds=(w,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(w)
        # Read up to the newline: the server writes the number and the newline
        # separately and dies if the pipe is closed in between.
        text, deadline = b"", time.monotonic() + XVFB_START_S
        try:
            while not text.endswith(b"\n"):
                left = deadline - time.monotonic()
                ready = select.select([r], [], [], max(0.0, left))[0] if left > 0 else []
                chunk = os.read(r, 64) if ready else b""
                if not chunk:
                    break
                text += chunk
        finally:
            os.close(r)
        if not text.endswith(b"\n"):
            self.close()
            raise HeadlessDisplayError(
                f"Xvfb did not report a display number within {XVFB_START_S:g} s"
            )
        self.name = f":{text.decode().strip()}"
        return self

    def close(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None

    def __enter__(self) -> HeadlessDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
