"""Child processes that never outlive kartkit: started so that the kernel kills
them when the Python process dies (``PR_SET_PDEATHSIG``), ended by their own
process id (never by name), and registered with ``atexit`` in between.

``PR_SET_PDEATHSIG`` covers what ``finally`` and ``atexit`` cannot: a
``kill -9`` of Python, or a crash. It fires when the *thread* that started the
child ends, so children are started from the main thread or a thread that
lives as long as they do. The signal survives ``exec`` (it is cleared only for
set-uid programs), so it holds through wrappers such as ``stdbuf``.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1
#: Seconds a process gets to end after SIGTERM before SIGKILL.
TERM_GRACE_S = 3.0

_live: set[subprocess.Popen[bytes]] = set()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgrp()  # its own group: a Ctrl-C at the terminal reaches kartkit, which ends it


def start_process(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv)`` for a child that dies with this process."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        list(argv), preexec_fn=_die_with_parent, **popen
    )
    _live.add(proc)
    return proc


def end_process(proc: subprocess.Popen[bytes], grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; always reaps. Signals go to the
    process id only (its group is its own, but nothing else is in it)."""
    _live.discard(proc)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@atexit.register
def _end_all() -> None:
    for proc in list(_live):
        end_process(proc, grace_s=1.0)
