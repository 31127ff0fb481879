"""The still-view rescue: when views stay the same for ``still_s``, the button
is held for ``hold_s``, then nothing for ``cooldown_s``; moving views never
rescue. Frames are made here (noise that moves or stays); time is passed in."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kartdata.errors import KartError
from kartplay.rescue import SAMPLE_S, RescueConfig, StillView, thumbnail

CONFIG = RescueConfig("c_up", still_s=1.0, motion=2.0, hold_s=0.25, cooldown_s=2.0)
STEP_S = 0.05


def _views(rng: np.random.Generator, n: int, still: bool) -> list[np.ndarray]:
    first = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    if still:
        # the same view with sensor-like noise of a few levels and a clock that ticks
        out = []
        for i in range(n):
            v = np.clip(first.astype(int) + rng.integers(-3, 4, first.shape), 0, 255)
            v[:12, -60:] = (i * 37) % 256
            out.append(v.astype(np.uint8))
        return out
    return [rng.integers(0, 256, first.shape, dtype=np.uint8) for _ in range(n)]


def _run(watch: StillView, views: list[np.ndarray], t0: float) -> list[tuple[float, bool]]:
    return [(t0 + i * STEP_S, watch.update(v, t0 + i * STEP_S)) for i, v in enumerate(views)]


def test_a_moving_view_is_never_rescued() -> None:
    watch = StillView(CONFIG)
    steps = _run(watch, _views(np.random.default_rng(0), 200, still=False), 100.0)
    assert not any(held for _, held in steps)
    assert watch.rescues == 0


def test_a_still_view_is_rescued_after_still_s_then_the_button_is_held_for_hold_s() -> None:
    watch = StillView(CONFIG)
    # the start's quiet time (cooldown_s) passes while the kart moves
    moving = _run(watch, _views(np.random.default_rng(1), 60, still=False), 100.0)
    assert not any(h for _, h in moving)
    t0 = 100.0 + 60 * STEP_S
    steps = _run(watch, _views(np.random.default_rng(2), 200, still=True), t0)
    held = [t for t, h in steps if h]
    assert watch.rescues >= 1
    first = held[0]
    # still from the first view on: the first comparison is SAMPLE_S later
    assert CONFIG.still_s <= first - t0 <= CONFIG.still_s + SAMPLE_S + STEP_S
    # held for hold_s, every step
    run = [t for t in held if t < first + CONFIG.hold_s]
    assert len(run) == round(CONFIG.hold_s / STEP_S)
    # then nothing until the cooldown is over and the view has been still again
    second = [t for t in held if t > first + CONFIG.hold_s]
    assert second, "a view still for 10 s is rescued again"
    assert second[0] >= first + CONFIG.hold_s + CONFIG.cooldown_s
    assert watch.rescues == 1 + sum(1 for a, b in itertools.pairwise(held) if b - a > STEP_S * 1.5)


def test_no_rescue_in_the_first_cooldown_and_after_a_reset() -> None:
    watch = StillView(CONFIG)
    views = _views(np.random.default_rng(3), 200, still=True)
    steps = _run(watch, views, 50.0)
    first = next(t for t, h in steps if h)
    assert first >= 50.0 + CONFIG.cooldown_s  # a race's first seconds: the kart is getting going
    watch = StillView(CONFIG)
    _run(watch, views[:30], 0.0)
    watch.reset()  # a human took over: their still time is not the AI's
    steps = _run(watch, views[30:], 30 * STEP_S)
    assert next(t for t, h in steps if h) >= 30 * STEP_S + CONFIG.cooldown_s


def test_the_thumbnail_is_block_means_about_forty_wide() -> None:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, 160:] = 255
    t = thumbnail(frame)
    assert t.shape == (30, 40)
    assert t[:, :20].max() == 0 and t[:, 20:].min() == 255


@pytest.mark.parametrize(
    "kwargs",
    [{"button": "rescue"}, {"still_s": 0.0}, {"motion": -1.0}, {"cooldown_s": float("nan")}],
)
def test_bad_settings_are_one_line_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(KartError, match="rescue"):
        RescueConfig(**kwargs)  # type: ignore[arg-type]


def test_a_request_rescues_at_the_next_step_unless_a_rescue_just_happened() -> None:
    watch = StillView(CONFIG)
    views = _views(np.random.default_rng(4), 200, still=False)
    _run(watch, views[:60], 0.0)  # past the start's quiet time
    watch.request()
    t = 60 * STEP_S
    assert watch.update(views[60], t) and watch.rescues == 1
    watch.request()  # during the rescue's quiet time: dropped, not kept for later
    steps = _run(watch, views[61:], t + STEP_S)
    assert watch.rescues == 1 and sum(h for _, h in steps) == round(CONFIG.hold_s / STEP_S) - 1
