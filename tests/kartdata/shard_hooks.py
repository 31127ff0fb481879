"""``kartdata`` with test hooks in its shard workers (test-only code).

Run as ``python tests/kartdata/shard_hooks.py shard ...`` with

``SHARD_BARRIER=N:DIR``: each worker, on its first record, marks itself in DIR
and waits (bounded) until N workers have: every worker gets work, so a test
can tell the workers' shards apart;

``SHARD_KILL_AT=POINT:N:FLAG``: at the pause point the process writes FLAG (its
pid) and waits to be killed. POINT is one of

- ``record`` — a worker has written at least N records and holds an open shard;
- ``before-manifest`` — the new manifest is written to its temporary name and
  synced, not yet renamed over the old one;
- ``after-manifest`` — the new manifest has just replaced the old one.

The patches are applied when this file is imported, so spawned shard workers,
which re-import the main script as ``__mp_main__``, carry them too.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from kartdata import fs
from kartdata.manifest import MANIFEST_FILE
from kartdata.shard.files import StratumWriters

ENV = "SHARD_KILL_AT"
BARRIER_ENV = "SHARD_BARRIER"
POINTS = ("record", "before-manifest", "after-manifest")


def _pause(flag: str) -> None:
    fs.atomic_write(flag, str(os.getpid()).encode())
    # the test kills this process group; the bound only keeps a failed test
    # from leaving a process behind for ever
    threading.Event().wait(600)
    os._exit(99)


def _install(point: str, n: int, flag: str) -> None:
    if point == "record":
        write = StratumWriters.write

        def paused_write(self: StratumWriters, *args: Any) -> None:
            write(self, *args)
            # from the N-th record on, at the first moment the worker holds an
            # open shard (a rotation at the N-th can close its only one)
            if self.records >= n and self._open:
                _pause(flag)

        StratumWriters.write = paused_write  # type: ignore[method-assign]
    else:
        replace = os.replace

        def paused_replace(src: Any, dst: Any, **kw: Any) -> None:
            is_manifest = os.path.basename(str(dst)) == MANIFEST_FILE
            if is_manifest and point == "before-manifest":
                _pause(flag)
            replace(src, dst, **kw)
            if is_manifest and point == "after-manifest":
                _pause(flag)

        os.replace = paused_replace  # type: ignore[assignment]


def _install_barrier(n: int, folder: str) -> None:
    write = StratumWriters.write

    def write_after_barrier(self: StratumWriters, *args: Any) -> None:
        if self.records == 0:
            open(os.path.join(folder, f"w{self.worker}"), "wb").close()
            deadline = time.monotonic() + 120
            while len(os.listdir(folder)) < n and time.monotonic() < deadline:
                time.sleep(0.02)
        write(self, *args)

    StratumWriters.write = write_after_barrier  # type: ignore[method-assign]


if os.environ.get(BARRIER_ENV):
    _n, _folder = os.environ[BARRIER_ENV].split(":", 1)
    _install_barrier(int(_n), _folder)

_spec = os.environ.get(ENV)
if _spec:
    _point, _n, _flag = _spec.split(":", 2)
    assert _point in POINTS, _point
    _install(_point, int(_n), _flag)

if __name__ == "__main__":
    from kartdata.cli import main

    main()
