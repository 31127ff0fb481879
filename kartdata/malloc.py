"""glibc's malloc told to keep freed memory in worker processes that allocate
and free a few frame-sized buffers per frame (decoded pixels, Pillow images).

By default glibc returns the freed top of its heap to the kernel, and with
the allocation pattern of decode → resize → encode it did so on every frame,
so each next frame page-faulted fresh, zeroed pages back in: about 2 ms of
kernel time per 640x480 frame in the sharder, as much as the decode itself
(docs/benchmarks.md, "Sharding at the per-frame floor"). Fixed thresholds make
a worker keep up to :data:`TRIM_BYTES` of freed memory for reuse instead.
Only for processes kartkit starts itself: a user's own process keeps its
allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Allocations at least this large get their own mapping (and give it back when freed).
MMAP_BYTES = 16 << 20
#: Freed memory at the top of the heap kept for reuse, at most.
TRIM_BYTES = 64 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Apply the thresholds to this process; ``False`` where the C library is
    not glibc (nothing to tune, nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
