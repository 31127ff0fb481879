"""From a pad to keys: the policy's analog stick becomes key pulses.

A keyboard has no half-way: a steering key is up or down. To steer by 0.3 the
key is held 30 % of the time, in pulses the game registers — pulse-width
steering. :class:`AxisPulses` modulates one axis (first-order sigma-delta: the
time integral of "key down" follows the time integral of ``|value|``, and no
press or gap is shorter than ``min_pulse_s``); :class:`PadKeys` turns a whole
pad into the key names of a :class:`~kartdata.devices.keymap.KeyMap`.

This is the policy's decision (how its value is played), not the game's: the
same code drives any game through the virtual keyboard. It is updated at the
policy's rate; each update can only switch a key at that instant, so a pulse
lasts at least one policy step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kartdata.devices.keymap import KeyMap
from kartdata.errors import KartError
from kartdata.schema import Pad

#: Shortest press and shortest gap: three frames of a game at 60 frames/s (two
#: are enough for most games; SuperTuxKart at 15 frames/s needs about 0.07 s).
DEFAULT_MIN_PULSE_S = 0.05


@dataclass(frozen=True, slots=True)
class PulseConfig:
    """How an analog value in [-1, 1] becomes pulses of one of two keys."""

    #: No press or gap shorter than this (seconds): the game must see each.
    min_pulse_s: float = DEFAULT_MIN_PULSE_S
    #: ``|value|`` at or below: the keys stay up.
    dead: float = 0.05
    #: ``|value|`` at or above: the key is held.
    full: float = 0.95

    def __post_init__(self) -> None:
        if not (self.min_pulse_s >= 0 and math.isfinite(self.min_pulse_s)):
            raise KartError(f"minimum pulse {self.min_pulse_s} s is not a number ≥ 0")
        if not 0.0 <= self.dead < self.full <= 1.0:
            raise KartError(
                f"pulse thresholds need 0 ≤ dead ({self.dead}) < full ({self.full}) ≤ 1"
            )


class AxisPulses:
    """One axis → -1 (the negative key down), 0 (both up) or +1, over time.

    ``error`` integrates (wanted duty - actual key state) over time; a key goes
    down when the integral is ahead (and the gap has lasted ``min_pulse_s``),
    up when it has caught up (and the press has lasted ``min_pulse_s``). So
    the duty cycle over any stretch of constant value is ``|value|`` to within
    one pulse, and pulses get longer rather than shorter than the game can see.
    """

    def __init__(self, config: PulseConfig | None = None) -> None:
        self.config = config or PulseConfig()
        self.state = 0
        self._since = -math.inf
        self._last: float | None = None
        self._value = 0.0
        self._error = 0.0

    def update(self, value: float, now: float) -> int:
        """The key state from ``now`` on, for ``value`` (clipped to [-1, 1])."""
        c = self.config
        if self._last is not None:
            dt = max(0.0, now - self._last)
            self._error += (abs(self._value) - (self.state != 0)) * dt
        self._last = now
        v = max(-1.0, min(1.0, float(value)))
        sign = (v > 0) - (v < 0)
        before = (self._value > 0) - (self._value < 0)
        ready = now - self._since >= c.min_pulse_s
        if abs(v) <= c.dead or abs(v) >= c.full or (before and sign != before):
            # a new regime (off, full, or the other way): the past owes nothing,
            # and a turn the other way starts with a pulse that way at once
            self._error = 0.0
            want = 0 if abs(v) <= c.dead else sign
        elif self.state == 0:
            want = sign if ready and self._error > 0 else 0
        else:
            want = 0 if ready and self._error <= 0 else sign
        if want != self.state:
            self.state, self._since = want, now
        self._value = v
        return self.state


class PadKeys:
    """A pad → the key names to hold, through ``keymap``: buttons held while
    pressed, each stick axis pulse-width modulated onto its two keys."""

    def __init__(self, keymap: KeyMap, config: PulseConfig | None = None) -> None:
        self.keymap = keymap
        self.x = AxisPulses(config)
        self.y = AxisPulses(config)

    def keys(self, pad: Pad, now: float) -> frozenset[str]:
        km = self.keymap
        out: set[str] = set()
        sx, sy = self.x.update(pad.x, now), self.y.update(pad.y, now)
        if sx:
            out.add(km.right if sx > 0 else km.left)
        if sy:
            out.add(km.up if sy > 0 else km.down)
        for b in pad.buttons:
            out.update(km.buttons.get(b, ())[:1])
        return frozenset(out)

    def reset(self) -> None:
        """Forget the pulse history (after a takeover, a lost window)."""
        self.x = AxisPulses(self.x.config)
        self.y = AxisPulses(self.y.config)
