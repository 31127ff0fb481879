"""Neighbour context: each frame with the pads of its neighbours t-R … t+R."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kartdata.schema import CONTEXT_RADIUS
from kartdata.sources.base import Frame

#: A step in capture time longer than this (or frame indexes that are not
#: consecutive) starts a new segment: neighbour context never reaches across
#: it, the segment's edge is replicated instead, as at the session's ends.
SEGMENT_GAP_NS = 2 * 10**9


def _breaks(prev: Frame, cur: Frame) -> bool:
    return (
        cur.index != prev.index + 1 or cur.t_ns < prev.t_ns or cur.t_ns - prev.t_ns > SEGMENT_GAP_NS
    )


def with_context(
    frames: Iterable[Frame], radius: int = CONTEXT_RADIUS
) -> Iterator[tuple[Frame, list[float]]]:
    """Each frame with the pads of frames t-R … t+R flattened (row-major), edges
    of each segment replicated. Holds at most 2R+2 frames."""
    buf: list[Frame] = []
    vecs: list[list[float]] = []
    nxt = 0

    def emit(i: int) -> tuple[Frame, list[float]]:
        last = len(vecs) - 1
        ctx: list[float] = []
        for k in range(i - radius, i + radius + 1):
            ctx.extend(vecs[min(max(k, 0), last)])
        return buf[i], ctx

    prev: Frame | None = None
    for f in frames:
        if prev is not None and _breaks(prev, f):
            while nxt < len(buf):
                yield emit(nxt)
                nxt += 1
            buf, vecs, nxt = [], [], 0
        buf.append(f)
        vecs.append(f.pad.to_vector())
        while nxt + radius < len(buf):
            yield emit(nxt)
            nxt += 1
        drop = nxt - radius
        if drop > 0:
            del buf[:drop], vecs[:drop]
            nxt -= drop
        prev = f
    while nxt < len(buf):
        yield emit(nxt)
        nxt += 1
