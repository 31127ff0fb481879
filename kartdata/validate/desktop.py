"""Desktop-behind-window: frames, whole or partly, that do not show the game.

Nobody tells the detector what the game looks like. It learns it from the
recordings: within a session the game's frames resemble each other, and across
a dataset the game is what most frames show. Each frame is a grid of blocks
(``features.GRID``), each block a short descriptor (colour, spread, edges,
flatness). A block is *foreign* when no game frame of the reference shows
anything like it at the same place; a frame with a large enough foreign share
— a whole desktop, or a window covering part of the game — is flagged.

The reference is built in two rounds. Round one takes, in every session, the
half of its frames nearest the session's per-feature median (a median is not
moved by up to half of the frames being something else, so it holds when 40 %
of a session is desktop) and pools them with the other sessions' of the same
game. Round two rebuilds the reference from every frame round one found clean,
so that rarer game views (tight turns, the start zoom) have something to match,
and re-scores only the frames round one found foreign.
A frame never matches itself or its immediate neighbours, which are near-copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from kartdata.validate.config import DesktopChecks
from kartdata.validate.features import default_workers

#: Below this many usable frames in a game's sessions there is no majority to learn from.
MIN_FRAMES = 20
#: Frames scored at a time: their distance matrix stays a few MB.
_CHUNK = 32


@dataclass(slots=True)
class SessionBlocks:
    """One session's block descriptors and which frames may be judged."""

    blocks: np.ndarray  # [n, rows, cols, k]
    usable: np.ndarray  # bool [n]: decoded, right size, not black/blank
    group: str = ""  # sessions of the same group (game) share a reference


@dataclass(slots=True)
class DesktopScores:
    foreign_share: np.ndarray  # float32 [n]: share of blocks nothing in the game resembles
    flagged: np.ndarray  # bool [n]


def detect(sessions: Sequence[SessionBlocks], cfg: DesktopChecks) -> list[DesktopScores]:
    """Scores and flags for every frame of every session, in order."""
    out: list[DesktopScores | None] = [None] * len(sessions)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sessions):
        groups.setdefault(s.group, []).append(i)
    for members in groups.values():
        for i, scores in zip(
            members, _detect_group([sessions[i] for i in members], cfg), strict=True
        ):
            out[i] = scores
    return [s for s in out if s is not None]


def _detect_group(sessions: list[SessionBlocks], cfg: DesktopChecks) -> list[DesktopScores]:
    if sum(int(s.usable.sum()) for s in sessions) < MIN_FRAMES:
        return [_nothing(len(s.blocks)) for s in sessions]
    blocks = [s.blocks.astype(np.float32) for s in sessions]  # once, for both rounds
    flat = [b.reshape(len(b), -1) for b in blocks]
    core = [_median_core(x, s.usable) for x, s in zip(flat, sessions, strict=True)]
    foreign = _score_all(blocks, core, cfg)
    suspect = [fb.any(axis=1) for fb in foreign]
    core = [s.usable & ~sus for s, sus in zip(sessions, suspect, strict=True)]
    # Round two only gives the frames round one found foreign a wider
    # reference to match; a frame that already matched the game stays clean.
    foreign = _score_all(blocks, core, cfg, only=suspect)
    out = []
    for s, fb in zip(sessions, foreign, strict=True):
        share = fb.mean(axis=1).astype(np.float32)
        flagged = s.usable & (share >= cfg.foreign_share)
        out.append(DesktopScores(foreign_share=share, flagged=flagged))
    return out


def _nothing(n: int) -> DesktopScores:
    return DesktopScores(np.zeros(n, np.float32), np.zeros(n, bool))


def _median_core(x: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """The half of the usable frames nearest the per-feature median."""
    core = np.zeros(len(x), bool)
    idx = np.flatnonzero(usable)
    if len(idx) == 0:
        return core
    m = np.median(x[idx], axis=0)
    r = np.linalg.norm(x[idx] - m, axis=1)
    core[idx[r <= np.median(r)]] = True
    return core


def _score_all(
    blocks: list[np.ndarray],
    core: list[np.ndarray],
    cfg: DesktopChecks,
    only: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Foreign blocks of every frame of every session (``blocks``: float32, one
    array per session), or of the frames ``only`` marks; the others come back
    all clean."""
    rng = np.random.default_rng(0)
    own = [_pick(np.flatnonzero(c), cfg.reference_frames, rng) for c in core]
    out: list[np.ndarray] = []
    for i, b in enumerate(blocks):
        # The session's own game frames, plus a share of every other session's,
        # so that a session that is mostly desktop still has the game to match.
        others = [
            (j, _pick(own[j], max(1, cfg.reference_frames // (2 * (len(blocks) - 1))), rng))
            for j in range(len(blocks))
            if j != i
        ]
        ref = np.concatenate([b[own[i]]] + [blocks[j][p] for j, p in others])
        ref_pos = np.concatenate([own[i]] + [np.full(len(p), -(10**9)) for _, p in others])
        which = None if only is None else np.flatnonzero(only[i])
        out.append(_foreign_blocks(b, ref, ref_pos, cfg, which))
    return out


def _pick(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(idx) <= n:
        return idx
    return np.sort(rng.choice(idx, n, replace=False))


def _foreign_blocks(
    blocks: np.ndarray,
    ref: np.ndarray,
    ref_pos: np.ndarray,
    cfg: DesktopChecks,
    which: np.ndarray | None = None,
) -> np.ndarray:
    """Per frame and block: farther than ``block_distance`` from the same block
    of every reference frame that is not the frame's neighbour.

    ``ref_pos`` holds each reference frame's position in this session (sorted
    ascending first, then those of other sessions, which are nobody's
    neighbours). Chunks of frames are scored in parallel threads: the matrix
    products and reductions release the GIL."""
    n = len(blocks)
    nb = blocks.shape[1] * blocks.shape[2]
    if len(ref) == 0 or n == 0:
        return np.zeros((n, nb), bool)
    k = blocks.shape[-1]
    r = ref.reshape(len(ref), nb, k).transpose(1, 0, 2)  # [nb, R, k]
    # |q - r|² = |q|² + (|r|² - 2 q·r): the bracket is one matrix product of
    # [q, 1] with [-2r, |r|²]; |q|² is added after the minimum.
    r_aug = np.concatenate([-2.0 * r, (r * r).sum(-1, keepdims=True)], axis=-1)
    r_aug_t = np.ascontiguousarray(r_aug.transpose(0, 2, 1))  # [nb, k+1, R]
    own = ref_pos[ref_pos >= 0]
    if len(own) and (np.diff(own) < 0).any():
        raise ValueError("own reference positions must be sorted")
    q = blocks.reshape(n, nb, k)
    limit = np.float32(cfg.block_distance**2)
    radius = cfg.exclusion_radius

    frames = np.arange(n) if which is None else which

    def score(a: int) -> np.ndarray:
        pos = frames[a : a + _CHUNK]
        qc = q[pos].transpose(1, 0, 2)  # [nb, c, k]
        c = qc.shape[1]
        q_aug = np.empty((nb, c, k + 1), np.float32)
        q_aug[..., :k] = qc
        q_aug[..., k] = 1.0
        d = np.matmul(q_aug, r_aug_t)  # [nb, c, R]
        # a frame never matches itself or its near-copy neighbours
        lo = np.searchsorted(own, pos - radius, "left")
        hi = np.searchsorted(own, pos + radius, "right")
        count = hi - lo
        if count.any():
            rows = np.repeat(np.arange(c), count)
            cols = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
            d[:, rows, cols] = np.inf
        best = d.min(axis=2) + (qc * qc).sum(-1)  # [nb, c]
        return (best > limit).T

    out = np.zeros((n, nb), bool)
    if len(frames) == 0:
        return out
    starts = range(0, len(frames), _CHUNK)
    if len(frames) <= _CHUNK:
        out[frames] = score(0)
        return out
    with ThreadPoolExecutor(max_workers=default_workers()) as pool:
        out[frames] = np.concatenate(list(pool.map(score, starts)))
    return out
