"""Validation of a set of recordings: every check, every frame's verdict.

Library entry point: :func:`analyse` takes sources and returns one
:class:`SessionResult` each; the CLI prints them, :mod:`verdicts` stores them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from kartdata.schema import STEERING_CLASSES, SessionMeta
from kartdata.sources.base import Frame, Source
from kartdata.validate import classmix, controls, desktop, images, structure, timing
from kartdata.validate.config import ValidateConfig
from kartdata.validate.features import (
    Features,
    ImageObserver,
    PendingFeatures,
    make_executor,
    start_features,
)
from kartdata.validate.issues import Issue, error

#: Reason given to a frame whose image file is missing.
MISSING = "missing"
_LISTED = 8


@dataclass(slots=True)
class SessionResult:
    """What validate found in one recording."""

    path: str
    layout: str
    key: str | None
    meta: SessionMeta | None
    frames: int = 0
    #: Frame index → why it is excluded (absent: clean).
    verdicts: dict[int, str] = field(default_factory=dict)
    #: Frame index → how sure: 1 for definite checks, the foreign share for desktop.
    scores: dict[int, float] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    unusable: bool = False
    steering: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEERING_CLASSES, 0))
    rate: timing.Rate | None = None
    #: Frames by index, to look at flagged ones (gallery); not serialised.
    frame_refs: dict[int, Frame] = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.verdicts.values()).most_common())

    @property
    def errors(self) -> int:
        return sum(i.severity == "error" for i in self.issues)

    @property
    def warnings(self) -> int:
        return sum(i.severity == "warning" for i in self.issues)


def analyse(
    sources: Sequence[Source],
    config: ValidateConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    on_image: ImageObserver | None = None,
) -> list[SessionResult]:
    """Validate ``sources`` together: the desktop detector learns what the game
    looks like from all of them. ``on_image``: see
    :func:`~kartdata.validate.features.start_features`."""
    from threadpoolctl import threadpool_limits

    cfg = config or ValidateConfig()
    # One BLAS thread (inherited by the forked decode workers): the products are
    # small, and OpenBLAS's own threads only contend with the workers and the
    # desktop scorer's threads for the cores — on a busy 2-core machine they
    # made validation ~50x slower.
    with threadpool_limits(1, user_api="blas"):
        return _analyse(sources, cfg, progress, on_image)


def _analyse(
    sources: Sequence[Source],
    cfg: ValidateConfig,
    progress: Callable[[str], None] | None,
    on_image: ImageObserver | None,
) -> list[SessionResult]:
    results: list[SessionResult] = []
    feats: list[Features] = []
    reasons: list[list[str | None]] = []
    executor = make_executor(cfg.workers)
    try:
        # A session's frames are handed to the workers before the previous
        # session's are collected, so the workers decode while this process
        # reads the next controls table and runs the table checks.
        pending: _Pending | None = None
        for src in sources:
            if progress:
                progress(str(src.path))
            started = _start(src, cfg, executor, on_image)
            if pending is not None:
                _collect(pending, cfg, results, feats, reasons)
            pending = started
        if pending is not None:
            _collect(pending, cfg, results, feats, reasons)
    finally:
        if executor is not None:
            # Workers exit on their own; waiting for them adds nothing.
            executor.shutdown(wait=False, cancel_futures=True)
    shares = _desktop(results, feats, reasons, cfg)
    for res, f, r, share in zip(results, feats, reasons, shares, strict=True):
        _finish(res, f, r, share)
    return results


@dataclass(slots=True)
class _Pending:
    """A session whose frames are being decoded."""

    result: SessionResult
    structure: structure.Structure
    features: PendingFeatures | None


def _start(
    src: Source, cfg: ValidateConfig, executor: Executor | None, on_image: ImageObserver | None
) -> _Pending:
    """Read the structure, hand the frames to the decoders, and run the checks
    that need only the controls table while they decode."""
    st = structure.read_structure(src)
    try:
        key: str | None = src.key
    except Exception as e:  # a fingerprint needs the files readable
        key = None
        st.issues.append(error(structure.CHECK, str(e)))
    res = SessionResult(
        path=str(src.path), layout=src.layout, key=key, meta=st.meta, issues=list(st.issues)
    )
    res.unusable = st.unusable
    frames = st.frames
    res.frames = len(frames)
    res.frame_refs = {f.index: f for f in frames}
    if st.meta is None or not frames:
        return _Pending(res, st, None)
    pending = start_features(frames, executor, on_image)
    where = str(src.path)
    res.issues += controls.check_controls(where, frames, cfg.controls)
    t_issues, res.rate = timing.check_timing(where, frames, st.meta.fps, cfg.timing)
    res.issues += t_issues
    res.steering = classmix.steering_histogram(frames, cfg.controls.thresholds)
    res.issues += classmix.check_mix(where, res.steering, cfg.controls.dominant_share)
    return _Pending(res, st, pending)


def _collect(
    p: _Pending,
    cfg: ValidateConfig,
    results: list[SessionResult],
    feats: list[Features],
    reasons: list[list[str | None]],
) -> None:
    res, st = p.result, p.structure
    results.append(res)
    if p.features is None or st.meta is None:
        feats.append(Features.empty())
        reasons.append([])
        return
    f = p.features.result()
    r = images.image_reasons(f, st.meta.width, st.meta.height, cfg.images)
    for k, idx in enumerate(f.index):
        if r[k] == images.CORRUPT and int(idx) in st.missing:
            r[k] = MISSING
    for k, msg in enumerate(f.error):
        if msg is not None and r[k] == images.CORRUPT:
            res.issues.append(error("images", msg, frame=int(f.index[k])))
    feats.append(f)
    reasons.append(r)


def _desktop(
    results: list[SessionResult],
    feats: list[Features],
    reasons: list[list[str | None]],
    cfg: ValidateConfig,
) -> list[np.ndarray]:
    """Marks desktop frames in ``reasons``; returns each frame's foreign share."""
    usable_kinds = (None, images.FROZEN)
    blocks = [
        desktop.SessionBlocks(
            blocks=f.blocks,
            usable=np.array([x in usable_kinds for x in r], dtype=bool),
            group=res.meta.game if res.meta else "",
        )
        for res, f, r in zip(results, feats, reasons, strict=True)
    ]
    shares = []
    for scores, r in zip(desktop.detect(blocks, cfg.desktop), reasons, strict=True):
        for k in np.flatnonzero(scores.flagged):
            if r[k] is None:
                r[k] = images.DESKTOP
        shares.append(scores.foreign_share)
    return shares


def _finish(res: SessionResult, f: Features, r: list[str | None], share: np.ndarray) -> None:
    for k, reason in enumerate(r):
        if reason is None:
            continue
        idx = int(f.index[k])
        res.verdicts[idx] = reason
        res.scores[idx] = float(share[k]) if reason == images.DESKTOP else 1.0
    by_reason: dict[str, list[int]] = {}
    for idx, reason in res.verdicts.items():
        by_reason.setdefault(reason, []).append(idx)
    for reason, idxs in by_reason.items():
        if reason in (images.CORRUPT, MISSING):
            continue  # reported one by one already
        shown = ", ".join(map(str, idxs[:_LISTED])) + (" …" if len(idxs) > _LISTED else "")
        res.issues.append(
            error("images", f"{res.path}: {len(idxs)} frame(s) {reason}: {shown}", frame=idxs[0])
        )
