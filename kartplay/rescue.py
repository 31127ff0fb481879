"""Pressing the game's rescue button when the view stands still.

A behaviour clone that leaves the road meets what its demonstrations never
show: the kart against a tree or a wall, the gas held, going nowhere. A player
then presses rescue (SuperTuxKart's BackSpace puts the kart back on the road,
facing forward, for a few seconds' loss). :class:`StillView` decides that from
the pixels the policy sees (a caller that knows more, such as SuperTuxKart's
evaluation with the game's race log, asks for one with
:meth:`StillView.request`): when views taken ``SAMPLE_S`` apart
stay within ``motion`` grey levels of each other (mean absolute difference of
a ~40-pixel-wide grey thumbnail) for ``still_s``, it holds the button for
``hold_s``, then waits ``cooldown_s`` (the rescue's own animation moves the
view, and a kart dropped back on the road needs time to get going).

The figures come from the SuperTuxKart lap table's GIFs (320x240, 0.2 s
apart): a kart rolling or turning differs by 3-30 grey levels, one pushing
against a tree by 0.2-1.3 (the HUD's clock and the engine's smoke still move).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kartdata.errors import KartError
from kartdata.schema import BUTTONS

#: Views are compared this far apart (wall s): at 10-30 policy steps a second,
#: consecutive frames of a slow kart differ too little to tell it from a stuck one.
SAMPLE_S = 0.2
#: Width of the grey thumbnail compared (pixels).
THUMB_WIDTH = 40


@dataclass(frozen=True, slots=True)
class RescueConfig:
    #: The pad button that rescues (the game's key through the key map); None: never.
    button: str | None = None
    #: Wall seconds the view must stay still before a rescue.
    still_s: float = 1.5
    #: Mean absolute grey difference (0-255) under which two views count as the same.
    motion: float = 2.0
    #: How long the button is held.
    hold_s: float = 0.25
    #: Wall seconds after a rescue (and after the start) before the next.
    cooldown_s: float = 3.0

    def __post_init__(self) -> None:
        if self.button is not None and self.button not in BUTTONS:
            raise KartError(f"rescue button {self.button!r} is not one of {', '.join(BUTTONS)}")
        for name, v in (("still", self.still_s), ("motion", self.motion),
                        ("hold", self.hold_s), ("cooldown", self.cooldown_s)):  # fmt: skip
            if not (v > 0 and math.isfinite(v)):
                raise KartError(f"rescue {name} {v} is not a positive number")


class StillView:
    """Watches the views of one drive; :meth:`update` says when to hold the button."""

    def __init__(self, config: RescueConfig) -> None:
        self.config = config
        self.rescues = 0
        self._ref: np.ndarray | None = None
        self._ref_t = 0.0
        self._still_since: float | None = None
        self._hold_until = -math.inf
        self._quiet_until: float | None = None
        self._requested = False

    def request(self) -> None:
        """Rescue at the next step, for a reason found elsewhere (another
        thread may call this: SuperTuxKart's evaluation rescues a kart whose
        race log shows no progress). Dropped within the quiet time after a
        rescue: the game is still carrying the kart back."""
        self._requested = True

    def reset(self) -> None:
        """Forget the views (a human took over, a new race began)."""
        self._ref = None
        self._still_since = None
        self._quiet_until = None

    def update(self, frame: np.ndarray, now: float) -> bool:
        """Whether the rescue button is to be held at this step (``now``: monotonic s)."""
        c = self.config
        if self._quiet_until is None:
            self._quiet_until = now + c.cooldown_s
        if now < self._hold_until:
            return True
        if self._requested:
            self._requested = False
            if now >= self._quiet_until:
                return self._rescue(now)
        if self._ref is None or now - self._ref_t >= SAMPLE_S:
            thumb = thumbnail(frame)
            if self._ref is not None:
                if float(np.abs(thumb - self._ref).mean()) < c.motion:
                    if self._still_since is None:
                        self._still_since = self._ref_t
                else:
                    self._still_since = None
            self._ref, self._ref_t = thumb, now
        if (
            self._still_since is not None
            and now - self._still_since >= c.still_s
            and now >= self._quiet_until
        ):
            return self._rescue(now)
        return False

    def _rescue(self, now: float) -> bool:
        c = self.config
        self.rescues += 1
        self._hold_until = now + c.hold_s
        self._quiet_until = self._hold_until + c.cooldown_s
        self._still_since = None
        self._ref = None
        return True


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A uint8 RGB frame ``(H, W, 3)`` → a grey thumbnail about THUMB_WIDTH wide (float32)."""
    s = max(1, frame.shape[1] // THUMB_WIDTH)
    h, w = frame.shape[0] // s * s, frame.shape[1] // s * s
    # block means, not every s-th pixel: smoke and sparks alias in a strided pick
    grey = np.asarray(frame[:h, :w], dtype=np.float32).mean(axis=2)
    return grey.reshape(h // s, s, w // s, s).mean(axis=(1, 3))
