"""Closed-loop evaluation: a model drives unseen tracks, scored against the expert.

The model drives through :class:`kartplay.policy.Policy` (the same code that
serves the emulator), all seeds at once in lockstep so that each step is one
batched model call. The expert drives the same seeds in a second process at the
same time. Every run lasts the same number of steps (a finished lap does not
stop it), so scores compare across seeds and policies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.errors import KartError
from kartplay.policy import Policy
from kartplay.sim.env import Episode, Progress, make_env
from kartplay.sim.expert import Expert, ExpertConfig


@dataclass(frozen=True, slots=True)
class DriveConfig:
    seeds: tuple[int, ...] = (11, 12, 13, 14, 15)
    steps: int = 1000
    #: Where to write the animated GIF of the first seed's run (None: none).
    gif: Path | None = None
    #: Every k-th step goes into the GIF.
    gif_every: int = 2
    #: Where to write the score plot (None: none).
    plot: Path | None = None
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    #: Drive the expert too (the reference score).
    with_expert: bool = True

    def __post_init__(self) -> None:
        if not self.seeds:
            raise KartError("drive: no track seeds")
        if self.steps < 1 or self.gif_every < 1:
            raise KartError(f"steps {self.steps} and gif_every {self.gif_every} must be ≥ 1")


@dataclass(slots=True)
class DriveReport:
    model: list[Progress]
    expert: list[Progress]
    gif: Path | None = None
    plot: Path | None = None

    @property
    def model_mean(self) -> float:
        return float(np.mean([p.score for p in self.model]))

    @property
    def expert_mean(self) -> float:
        return float(np.mean([p.score for p in self.expert])) if self.expert else float("nan")

    @property
    def ratio(self) -> float:
        """The model's mean score as a fraction of the expert's."""
        e = self.expert_mean
        return self.model_mean / e if self.expert and e > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        experts = {p.seed: p for p in self.expert}
        return {
            "seeds": [
                {
                    **p.to_json(),
                    "expert_score": round(experts[p.seed].score, 2) if p.seed in experts else None,
                }
                for p in self.model
            ],
            "model_mean": round(self.model_mean, 2),
            "expert_mean": round(self.expert_mean, 2) if self.expert else None,
            "ratio": round(self.ratio, 4) if np.isfinite(self.ratio) else None,
            "gif": str(self.gif) if self.gif else None,
            "plot": str(self.plot) if self.plot else None,
        }

    def table(self) -> str:
        experts = {p.seed: p for p in self.expert}
        lines = [
            f"{'seed':>6} {'score':>8} {'expert':>8} {'tiles':>6} {'laps':>5} {'off-track s':>12}"
        ]
        for p in self.model:
            e = experts.get(p.seed)
            lines.append(
                f"{p.seed:>6} {p.score:>8.1f} {e.score if e else float('nan'):>8.1f} "
                f"{p.tiles:>6} {p.laps:>5} {p.off_track_s:>12.1f}"
            )
        lines.append(f"{'mean':>6} {self.model_mean:>8.1f} {self.expert_mean:>8.1f}")
        if self.expert:
            lines.append(f"model / expert: {self.ratio:.3f}")
        return "\n".join(lines)


def drive_policy(
    policy: Policy, seeds: Sequence[int], steps: int, gif_every: int = 0
) -> tuple[list[Progress], list[np.ndarray]]:
    """Drive every seed for ``steps`` steps; also returns the first seed's
    rendered frames (every ``gif_every``-th step) when asked."""
    envs = [make_env() for _ in seeds]
    try:
        episodes = [Episode(env, seed) for env, seed in zip(envs, seeds, strict=True)]
        policy.reset()
        shots: list[np.ndarray] = []
        for step in range(steps):
            live = [i for i, ep in enumerate(episodes) if not ep.done]
            if not live:
                break
            pads = policy.act_batch(np.stack([episodes[i].frame for i in live]))
            for i, pad in zip(live, pads, strict=True):
                episodes[i].step_pad(pad)
            if gif_every and step % gif_every == 0 and not episodes[0].done:
                shots.append(_shot(envs[0]))
        return [ep.finish() for ep in episodes], shots
    finally:
        for env in envs:
            env.close()


def drive_expert(
    seeds: Sequence[int], steps: int, config: ExpertConfig = ExpertConfig()
) -> list[Progress]:
    env = make_env()
    out = []
    try:
        for seed in seeds:
            ep = Episode(env, seed)
            expert = Expert(config)
            expert.reset(env)
            for _ in range(steps):
                ep.step(expert.act(env))
                if ep.done:
                    break
            out.append(ep.finish())
    finally:
        env.close()
    return out


def drive(policy: Policy, config: DriveConfig = DriveConfig()) -> DriveReport:
    """Drive the model (and the expert, in parallel) on ``config.seeds``."""
    seeds = list(config.seeds)
    import multiprocessing as mp

    # spawn: this process may already run TensorFlow, which does not survive fork.
    pool = (
        ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) if config.with_expert else None
    )
    try:
        future = pool.submit(drive_expert, seeds, config.steps, config.expert) if pool else None
        model, shots = drive_policy(
            policy, seeds, config.steps, config.gif_every if config.gif else 0
        )
        expert = future.result() if future else []
    finally:
        if pool:
            pool.shutdown()
    report = DriveReport(model, expert)
    if config.gif and shots:
        report.gif = write_gif(shots, config.gif, fps=50 / config.gif_every)
    if config.plot:
        report.plot = write_plot(report, config.plot)
    return report


def _shot(env: Any) -> np.ndarray:
    from PIL import Image

    # The 600x400 view is what a person wants to watch; halved it keeps the
    # GIF small.
    im = Image.fromarray(env.render()).resize((300, 200), Image.Resampling.BILINEAR)
    return np.asarray(im)


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: float) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f).quantize(64) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
    return path


def write_plot(report: DriveReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    seeds = [p.seed for p in report.model]
    x = np.arange(len(seeds))
    experts = {p.seed: p.score for p in report.expert}
    bars.bar(x - 0.2, [p.score for p in report.model], 0.4, label="model")
    if experts:
        bars.bar(x + 0.2, [experts.get(s, 0.0) for s in seeds], 0.4, label="expert")
    bars.set_xticks(x, [str(s) for s in seeds])
    bars.set_xlabel("track seed")
    bars.set_ylabel("score")
    title = f"model {report.model_mean:.0f}"
    if experts:
        title += f" / expert {report.expert_mean:.0f} = {report.ratio:.2f}"
    bars.set_title(title)
    bars.legend()
    for p in report.model:
        curves.plot(np.cumsum(p.rewards), label=f"seed {p.seed}")
    curves.set_xlabel("step")
    curves.set_ylabel("cumulative score (model)")
    curves.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def save_report(report: DriveReport, path: Path) -> None:
    Path(path).write_text(json.dumps(report.to_json(), indent=1) + "\n")
