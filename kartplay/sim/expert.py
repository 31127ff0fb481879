"""The scripted "human": pure pursuit on the track's centreline.

It steers toward the centreline point a few tiles ahead of the nearest one and
holds a target speed that drops before bends (the sharper the heading change
over the next stretch, the slower), with the pedals fully on or off so every
action is exactly a pad (see :mod:`kartplay.sim.env`). It reads the simulator's
state, never the pixels: it is the teacher whose pixels-to-pad mapping gets
cloned, and the score every clone is measured against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kartplay.sim.env import car_state, centreline, off_track

#: Centreline spacing of CarRacing's track points (TRACK_DETAIL_STEP).
TILE_M = 3.5


@dataclass(frozen=True, slots=True)
class ExpertConfig:
    #: Aim point distance along the centreline: ``lookahead`` metres plus
    #: ``lookahead_s`` seconds of travel at the current speed.
    lookahead: float = 10.0
    lookahead_s: float = 0.35
    #: Steering gain on the heading error to the aim point (radians → stick).
    gain: float = 1.5
    #: Yaw-rate damping (stick per rad/s): the steering wheel turns slowly and
    #: the rear slides, so without it the car weaves and spins at speed.
    damping: float = 0.15
    #: Target speeds on straights and in the sharpest bends (m/s).
    fast: float = 65.0
    slow: float = 32.0
    #: Stretch ahead (tiles) whose total heading change sets the target speed,
    #: and the heading change (radians) that counts as the sharpest bend.
    horizon: int = 18
    sharp: float = 1.6
    #: Brake only when this much (m/s) above the target.
    brake_margin: float = 6.0
    #: Off the road: target speed. Anywhere: no gas while the aim point is more
    #: than ``traction`` radians off the nose above ``crawl`` m/s (full gas with
    #: the wheels on lock spins a rear-driven car in circles; a clone that
    #: overshoots a hairpin gets there, and its labels must say how to leave).
    grass: float = 18.0
    traction: float = 0.5
    #: Below this speed (m/s) gas is safe even on full lock.
    crawl: float = 10.0


class Expert:
    """Pure-pursuit driver for one episode; call :meth:`reset` on a new track."""

    def __init__(self, config: ExpertConfig = ExpertConfig()) -> None:
        self.config = config
        self._line: np.ndarray | None = None
        self._headings: np.ndarray | None = None
        self._nearest = 0

    def reset(self, env: Any) -> None:
        self._line = centreline(env)
        d = np.roll(self._line, -1, axis=0) - self._line
        self._headings = np.arctan2(d[:, 1], d[:, 0])
        self._nearest = 0

    def nearest(self, pos: np.ndarray) -> int:
        """Index of the closest centreline point, searched around the last one so
        that a track crossing near itself does not make the aim jump."""
        assert self._line is not None
        n = len(self._line)
        window = (self._nearest + np.arange(-10, 30)) % n
        d = np.linalg.norm(self._line[window] - pos, axis=1)
        best = int(window[int(np.argmin(d))])
        if d.min() > 30.0:  # lost (e.g. far off the track): search everywhere
            best = int(np.argmin(np.linalg.norm(self._line - pos, axis=1)))
        self._nearest = best
        return best

    def act(self, env: Any) -> np.ndarray:
        """The action ``[steer, gas, brake]`` for the car's current state."""
        if self._line is None:
            self.reset(env)
        assert self._line is not None and self._headings is not None
        c = self.config
        pos, heading, speed = car_state(env)
        i = self.nearest(pos)
        n = len(self._line)
        ahead_tiles = round((c.lookahead + c.lookahead_s * speed) / TILE_M)
        aim = self._line[(i + ahead_tiles) % n]
        to_aim = math.atan2(aim[1] - pos[1], aim[0] - pos[0])
        # +error means the aim point lies to the left; +steer turns right.
        error = _wrap(to_aim - heading)
        yaw_rate = float(env.car.hull.angularVelocity)
        steer = float(np.clip(-c.gain * error + c.damping * yaw_rate, -1.0, 1.0))

        ahead = self._headings[(i + np.arange(c.horizon)) % n]
        bend = float(np.max(np.abs(_wrap(ahead - self._headings[i]))))
        target = c.fast - (c.fast - c.slow) * min(1.0, bend / c.sharp)
        grass = off_track(env)
        if grass:
            target = min(target, c.grass)
        gas = 1.0 if speed < target else 0.0
        if abs(error) > c.traction and speed > c.crawl:
            gas = 0.0
        brake = 0.8 if speed > target + c.brake_margin else 0.0
        return np.array([steer, gas, brake], dtype=np.float64)


def _wrap(a: Any) -> Any:
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
