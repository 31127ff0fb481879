"""gymnasium's CarRacing-v3 seen through kartkit's pad.

The simulator is the one racing game that installs from PyPI, so it stands in
for the emulator end to end. Its action ``[steer, gas, brake]`` maps onto the
N64 pad as:

=========  ==========================  =========================================
CarRacing  pad field                   mapping
=========  ==========================  =========================================
steer      ``x`` (stick, +x right)     identity, in [-1, 1]
gas        ``a`` button                pressed → ``gas`` level (default 1.0)
brake      ``b`` button                pressed → ``brake`` level (default 0.8)
=========  ==========================  =========================================

Buttons are digital, so the expert drives with gas and brake fully on or off
(bang-bang speed control) and a recorded pad reproduces the exact action that
was applied.

The recorded and played frame is the 96x96 observation (what ``step`` returns),
not the 600x400 ``render()``: it is the view the environment was designed for
(centred on the car, looking ahead, with the speed and steering gauges in the
bottom bar), it costs nothing extra per step, and a small model learns from it
cheaply. Training and play both pass it through
:func:`kartdata.preprocess.preprocess` with the model's ``InputSpec``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kartdata.schema import Pad

ENV_ID = "CarRacing-v3"
#: The simulator's fixed physics rate; every step is one frame.
FPS = 50.0
#: Frame size of the observation kartkit records and plays from.
FRAME_SHAPE = (96, 96, 3)


@dataclass(frozen=True, slots=True)
class ActionMapping:
    """How pad buttons become pedal levels (and back)."""

    gas: float = 1.0
    brake: float = 0.8
    gas_button: str = "a"
    brake_button: str = "b"

    def to_action(self, pad: Pad) -> np.ndarray:
        return np.array(
            [
                float(pad.x),
                self.gas if pad.pressed(self.gas_button) else 0.0,
                self.brake if pad.pressed(self.brake_button) else 0.0,
            ],
            dtype=np.float64,
        )

    def to_pad(self, action: Any) -> Pad:
        """An action as the pad; pedals count as pressed at half their level or
        more."""
        steer, gas, brake = (float(v) for v in action)
        buttons = set()
        if gas >= 0.5 * self.gas:
            buttons.add(self.gas_button)
        if brake >= 0.5 * self.brake:
            buttons.add(self.brake_button)
        return Pad(x=max(-1.0, min(1.0, steer)), buttons=frozenset(buttons))


DEFAULT_MAPPING = ActionMapping()


def make_env(render_mode: str | None = "rgb_array") -> Any:
    """A headless CarRacing-v3 (``rgb_array`` rendering never opens a window)."""
    import gymnasium as gym

    # No TimeLimit: the runners decide how many steps an episode gets.
    return gym.make(ENV_ID, render_mode=render_mode, max_episode_steps=None).unwrapped


@dataclass(slots=True)
class Progress:
    """What the closed-loop report says about one run."""

    seed: int
    steps: int = 0
    score: float = 0.0
    tiles: int = 0
    track_tiles: int = 0
    laps: int = 0
    off_track_steps: int = 0
    out_of_bounds: bool = False
    rewards: list[float] = field(default_factory=list)

    @property
    def off_track_s(self) -> float:
        return self.off_track_steps / FPS

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "steps": self.steps,
            "score": round(self.score, 2),
            "tiles": self.tiles,
            "track_tiles": self.track_tiles,
            "laps": self.laps,
            "off_track_s": round(self.off_track_s, 2),
            "out_of_bounds": self.out_of_bounds,
        }


def off_track(env: Any) -> bool:
    """No wheel touches a road tile."""
    return all(len(w.tiles) == 0 for w in env.car.wheels)


class Episode:
    """One seeded track, stepped with pads or raw actions, keeping score.

    A finished lap does not end the run (CarRacing would): the tiles are reset
    and the count goes on, so every run lasts the same number of steps and
    scores stay comparable across policies.
    """

    def __init__(self, env: Any, seed: int, mapping: ActionMapping = DEFAULT_MAPPING) -> None:
        self.env = env
        self.mapping = mapping
        self.obs, _ = env.reset(seed=seed)
        self.progress = Progress(seed=seed, track_tiles=len(env.track))
        self.done = False
        self._lap_tiles = 0

    @property
    def frame(self) -> np.ndarray:
        return self.obs

    def step_pad(self, pad: Pad) -> np.ndarray:
        return self.step(self.mapping.to_action(pad))

    def step(self, action: np.ndarray) -> np.ndarray:
        if self.done:
            raise RuntimeError("episode is over")
        obs, reward, terminated, _truncated, info = self.env.step(np.asarray(action, np.float64))
        p = self.progress
        p.steps += 1
        p.score += float(reward)
        p.rewards.append(float(reward))
        p.off_track_steps += off_track(self.env)
        if terminated and info.get("lap_finished"):
            p.laps += 1
            self._lap_tiles += self.env.tile_visited_count
            self._new_lap()
        elif terminated:
            p.out_of_bounds = True
            self.done = True
        self.obs = obs
        return obs

    def _new_lap(self) -> None:
        env = self.env
        for tile in env.road:
            tile.road_visited = False
        env.tile_visited_count = 0
        env.new_lap = False

    def finish(self) -> Progress:
        self.progress.tiles = self._lap_tiles + self.env.tile_visited_count
        return self.progress


def car_state(env: Any) -> tuple[np.ndarray, float, float]:
    """Car position, heading (radians, direction of travel) and speed."""
    hull = env.car.hull
    pos = np.array(hull.position, dtype=np.float64)
    fwd = hull.GetWorldVector((0, 1))
    heading = math.atan2(fwd[1], fwd[0])
    speed = float(np.hypot(*hull.linearVelocity))
    return pos, heading, speed


def centreline(env: Any) -> np.ndarray:
    """The track's centreline points ``(N, 2)``, in driving order."""
    return np.array([(t[2], t[3]) for t in env.track], dtype=np.float64)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"11,12,13"`` or ``"100-115"`` or a mix → the seeds, in order."""
    from kartdata.errors import KartError

    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise KartError(f"seeds {text!r}: {part!r} is not a seed or a range a-b") from None
    if not seeds or any(s < 0 for s in seeds):
        raise KartError(f"seeds {text!r}: expected non-negative seeds like 11,12,13 or 100-115")
    return tuple(seeds)
