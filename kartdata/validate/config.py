"""Every threshold validate uses, in one typed place (and in the verdict store's
fingerprint, so that changing one recomputes stored verdicts)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from kartdata.schema import ClassThresholds


@dataclass(frozen=True, slots=True)
class ImageChecks:
    #: A frame whose brightest sampled pixel is at most this is black.
    black_max: float = 24.0
    #: A frame whose sampled luminance spread (std) is below this is blank
    #: (one flat colour: a cleared window, a loading screen).
    blank_std: float = 3.0
    #: Mean absolute difference (0–255) of the sampled pixels below which a
    #: frame counts as a repeat of the one before it.
    frozen_diff: float = 0.35
    #: Repeats in a row before they count as frozen: a game at 20 fps captured at
    #: 60 Hz legitimately repeats each image twice.
    frozen_min_repeats: int = 3


@dataclass(frozen=True, slots=True)
class DesktopChecks:
    #: A block whose appearance is this far (in feature units) from every game
    #: block seen at the same place is foreign to the game.
    block_distance: float = 0.55
    #: Share of the frame's area that must be foreign to call it a desktop
    #: frame; a window covering a quarter of the game counts.
    foreign_share: float = 0.2
    #: Frames sampled per session to model what the game looks like.
    reference_frames: int = 600
    #: Frames either side of a frame that may not serve as its own reference
    #: (they are near-copies of it).
    exclusion_radius: int = 2


@dataclass(frozen=True, slots=True)
class ControlChecks:
    #: A session whose steering never leaves the straight class has no turning.
    thresholds: ClassThresholds = field(default_factory=ClassThresholds)
    #: Warn when one steering class holds more than this share of frames.
    dominant_share: float = 0.8
    #: An axis whose spread over the session is below this is stuck.
    stuck_std: float = 1e-6


@dataclass(frozen=True, slots=True)
class TimingChecks:
    #: A step longer than this many nominal frame periods is a gap.
    gap_periods: float = 3.0
    #: Warn when the achieved rate is below this share of the nominal rate.
    min_rate_share: float = 0.9


@dataclass(frozen=True, slots=True)
class ValidateConfig:
    images: ImageChecks = field(default_factory=ImageChecks)
    desktop: DesktopChecks = field(default_factory=DesktopChecks)
    controls: ControlChecks = field(default_factory=ControlChecks)
    timing: TimingChecks = field(default_factory=TimingChecks)
    #: Worker processes for decoding (0: one per CPU core; 1: decode in-process).
    workers: int = 0

    def fingerprint(self) -> str:
        """Hash of the settings that decide verdicts (not of ``workers``)."""
        obj = asdict(self)
        obj.pop("workers")
        text = json.dumps(obj, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
