"""Collecting driving sessions on the simulator, written as native kartkit sessions
(``kartplay sim record``).

Each step's 96x96 observation and the expert's action (as a pad, see
:mod:`kartplay.sim.env`) become one frame of a session, one session per track
seed. Three ways to drive while recording:

- clean: the expert drives;
- perturbed: now and then the driver makes a mistake, then the expert
  corrects. A mistake is either a push off the line (the expert's steering
  replaced by a hard random steer for a moment) or, for a share of them, an
  overspeed (gas held and brake released for a longer moment, so the car
  arrives at the next bend too fast). The frames from the mistake to the end
  of the correction are tagged ``recovery``. The label is always what the
  expert *would* do in the frame shown, never the injected action, so mistakes
  teach how to come back, not how to make them. Overspeed is there because
  clean driving never shows the car above its target speed, so a clone that
  misreads its speed has never seen the brake used to recover;
- learner-driven (DAgger): a trained model drives through
  :class:`kartplay.policy.Policy` while the expert's actions are stored as the
  labels, every frame tagged ``recovery``. When the learner has been off the
  road for a while the expert takes the wheel until it is back, so a run
  spends its frames near the road rather than lost in the grass.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.errors import KartError
from kartdata.schema import IMAGE_FORMATS, RECOVERY_TAG, SessionMeta
from kartplay.sim.env import DEFAULT_MAPPING, ENV_ID, FPS, Episode, make_env, off_track
from kartplay.sim.expert import Expert, ExpertConfig

GAME = "carracing"


@dataclass(frozen=True, slots=True)
class PerturbConfig:
    """Mistakes: on average ``rate`` per second. A share ``overspeed`` of them
    hold full gas and no brake for ``overspeed_s``; the others are a steer of
    ``strength`` (random side) held for ``push_s``. The next ``settle_s`` of the
    expert's correction are tagged recovery too."""

    rate: float = 0.0
    push_s: float = 0.25
    strength: float = 0.5
    settle_s: float = 1.0
    overspeed: float = 0.0
    overspeed_s: float = 1.5

    def __post_init__(self) -> None:
        if self.rate < 0 or self.push_s <= 0 or self.settle_s < 0 or self.overspeed_s <= 0:
            raise KartError("perturbation rate, push and settle times must be non-negative")
        if not 0 < self.strength <= 1:
            raise KartError(f"perturbation strength {self.strength} is not in (0, 1]")
        if not 0 <= self.overspeed <= 1:
            raise KartError(f"overspeed share {self.overspeed} is not in [0, 1]")


@dataclass(frozen=True, slots=True)
class SimRecordConfig:
    steps: int = 1000
    #: Keep every k-th step (the session's rate is ``50 / every`` frames/s).
    every: int = 1
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    #: An exported model that drives while the expert labels (DAgger).
    policy: str | None = None
    #: Learner-driven: the expert takes over after this long off the road.
    takeover_s: float = 1.0
    #: Seed of the perturbation schedule (mixed with the track seed).
    seed: int = 0
    image_format: str = "png"

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.every <= 0:
            raise KartError("--steps and --every must be positive")
        if self.image_format not in IMAGE_FORMATS:
            raise KartError(f"image format {self.image_format!r} is not one of {IMAGE_FORMATS}")


@dataclass(frozen=True, slots=True)
class SimSessionReport:
    path: str
    seed: int
    frames: int
    recovery_frames: int
    score: float
    tiles: int
    driver: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_name(seed: int, config: SimRecordConfig) -> str:
    return f"{driver_name(config)}-seed{seed:05d}"


def driver_name(config: SimRecordConfig) -> str:
    if config.policy:
        return "learner"
    return "perturbed" if config.perturb.rate > 0 else "expert"


def collect_seed(
    out: str | Path, seed: int, config: SimRecordConfig = SimRecordConfig()
) -> SimSessionReport:
    """Drive one track and write it as a session under ``out``."""
    from kartdata.sources.native import SessionWriter

    out = Path(out)
    path = out / session_name(seed, config)
    policy = None
    if config.policy:
        from kartplay import policy as policy_mod

        policy = policy_mod.load(config.policy)
    env = make_env()
    try:
        ep = Episode(env, seed)
        expert = Expert(config.expert)
        expert.reset(env)
        meta = _meta(seed, config, ep.frame.shape)
        rng = np.random.default_rng([config.seed, seed])
        push = _PushSchedule(config.perturb, rng)
        takeover = round(config.takeover_s * FPS)
        off_steps, expert_driving = 0, False
        recovery = 0
        with SessionWriter(path, meta) as w:
            for step in range(config.steps):
                frame = ep.frame
                label = expert.act(env)
                tags: tuple[str, ...] = ()
                if policy is not None:
                    off_steps = off_steps + 1 if off_track(env) else 0
                    if off_steps >= takeover:
                        expert_driving = True
                    elif off_steps == 0:
                        expert_driving = False
                    applied = (
                        label if expert_driving else DEFAULT_MAPPING.to_action(policy.act(frame))
                    )
                    tags = (RECOVERY_TAG,)
                else:
                    applied, pushed = push.apply(label)
                    if pushed:
                        tags = (RECOVERY_TAG,)
                if step % config.every == 0:
                    w.write(
                        frame,
                        DEFAULT_MAPPING.to_pad(label),
                        t_ns=round(step * 1e9 / FPS),
                        tags=tags,
                    )
                    recovery += bool(tags)
                ep.step(applied)
                if ep.done:
                    break
            frames = w.frames_written
        p = ep.finish()
    finally:
        env.close()
    return SimSessionReport(
        str(path), seed, frames, recovery, p.score, p.tiles, driver_name(config)
    )


def collect(
    out: str | Path,
    seeds: Sequence[int],
    config: SimRecordConfig = SimRecordConfig(),
    workers: int | None = None,
) -> list[SimSessionReport]:
    """Record one session per seed, spreading seeds over worker processes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if (out / session_name(seed, config)).exists():
            raise KartError(
                f"{out / session_name(seed, config)}: already exists; refusing to overwrite"
            )
    workers = min(len(seeds), workers or os.cpu_count() or 1)
    if workers <= 1:
        return [collect_seed(out, s, config) for s in seeds]
    import multiprocessing as mp

    # spawn: a forked TensorFlow (the learner) is not safe to use.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(collect_seed, [out] * len(seeds), seeds, [config] * len(seeds)))


class _PushSchedule:
    """Replaces the expert's action during mistakes; says which steps are recovery."""

    def __init__(self, c: PerturbConfig, rng: np.random.Generator) -> None:
        self.c = c
        self.rng = rng
        self.push_left = 0
        self.settle_left = 0
        self.steer = 0.0
        self.overspeeding = False
        # A push may start once the car is rolling (after the start-up zoom).
        self.quiet = round(FPS)

    def apply(self, label: np.ndarray) -> tuple[np.ndarray, bool]:
        c = self.c
        if c.rate <= 0:
            return label, False
        if self.quiet > 0:
            self.quiet -= 1
            return label, False
        if self.push_left == 0 and self.settle_left == 0:
            if self.rng.random() < -math.expm1(-c.rate / FPS):
                self.overspeeding = c.overspeed > 0 and bool(self.rng.random() < c.overspeed)
                held = c.overspeed_s if self.overspeeding else c.push_s
                self.push_left = max(1, round(held * FPS))
                self.steer = c.strength * (1.0 if self.rng.random() < 0.5 else -1.0)
            else:
                return label, False
        if self.push_left > 0:
            self.push_left -= 1
            if self.push_left == 0:
                self.settle_left = round(c.settle_s * FPS)
            applied = label.copy()
            if self.overspeeding:
                applied[1], applied[2] = 1.0, 0.0
            else:
                applied[0] = self.steer
            return applied, True
        self.settle_left -= 1
        return label, True


def _meta(seed: int, config: SimRecordConfig, shape: tuple[int, ...]) -> SessionMeta:
    return SessionMeta(
        game=GAME,
        track=f"{GAME}-{seed}",
        player=driver_name(config),
        width=int(shape[1]),
        height=int(shape[0]),
        fps=FPS / config.every,
        image_format=config.image_format,
        extra={
            "simulator": ENV_ID,
            "seed": seed,
            "steps": config.steps,
            "every": config.every,
            "frame": "observation 96x96",
            "mapping": asdict(DEFAULT_MAPPING),
            "expert": asdict(config.expert),
            "perturb": asdict(config.perturb),
            "policy": config.policy,
            "schedule_seed": config.seed,
        },
    )
