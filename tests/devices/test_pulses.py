"""Pulse-width steering: the duty cycle of the key follows the steering value,
no pulse is shorter than the minimum, on a clock of our own and through the
real drive loop into a real X client."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from kartdata.devices.keymap import KeyMap
from kartdata.devices.x11 import keycode, open_display
from kartdata.preprocess import InputSpec, preprocess
from kartdata.schema import Pad
from kartmodel.targets import CONTINUOUS
from kartplay.keys import AxisPulses, PadKeys, PulseConfig
from kartplay.policy import Policy
from kartplay.window import DriveWindowConfig, KeyboardActuator, WindowDriver


def runs(states: list[tuple[float, int]], end: float) -> list[tuple[int, float]]:
    """(state, duration) of each stretch of equal states."""
    out = []
    for (t, s), (t2, _) in itertools.pairwise([*states, (end, None)]):  # type: ignore[list-item]
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1] + t2 - t)
        else:
            out.append((s, t2 - t))
    return out


@pytest.mark.parametrize("value", [0.1, 0.25, 0.5, 0.75, 0.9, -0.3, -0.8])
@pytest.mark.parametrize("rate_hz", [10.0, 30.0, 60.0])
def test_duty_cycle_follows_the_value(value: float, rate_hz: float) -> None:
    config = PulseConfig(min_pulse_s=0.05)
    ax = AxisPulses(config)
    ts = np.arange(0, 20, 1 / rate_hz)
    states = [(float(t), ax.update(value, float(t))) for t in ts]
    on = sum(1 for _, s in states if s) / len(states)
    assert on == pytest.approx(abs(value), abs=0.02)
    assert {s for _, s in states} == {0, int(np.sign(value))}
    # every press and every gap after the first press lasts at least the minimum
    # (or one policy step, when that is longer)
    stretches = runs(states, float(ts[-1]) + 1 / rate_hz)[1:-1]
    assert stretches and min(d for _, d in stretches) >= max(0.05, 1 / rate_hz) - 1e-9


def test_dead_full_and_turning_round() -> None:
    ax = AxisPulses(PulseConfig(min_pulse_s=0.05, dead=0.05, full=0.95))
    assert [ax.update(v, t / 30) for t, v in enumerate([0.0, 0.04, -0.04])] == [0, 0, 0]
    assert all(ax.update(0.97, 1 + t / 30) == 1 for t in range(30))  # held, no pulses
    assert ax.update(-0.5, 2.0) == -1  # the other way: at once, not after a gap
    assert all(ax.update(-1.0, 2 + t / 30) == -1 for t in range(1, 30))
    assert ax.update(0.0, 3.0) == 0  # released at once


def test_pad_keys_follow_the_key_map() -> None:
    km = KeyMap(left="a", right="d", up="w", down="s", buttons={"a": ("Up",), "b": ("Down",)})
    pk = PadKeys(km, PulseConfig(min_pulse_s=0.0))
    assert pk.keys(Pad(x=1.0, buttons=frozenset({"a"})), 0.0) == {"d", "Up"}
    assert pk.keys(Pad(x=-1.0, y=-1.0, buttons=frozenset({"b", "z"})), 0.1) == {"a", "s", "Down"}
    assert pk.keys(Pad(), 0.2) == frozenset()


@pytest.mark.parametrize("bad", [{"min_pulse_s": -1}, {"dead": 0.5, "full": 0.4}])
def test_bad_pulse_settings(bad: dict[str, float]) -> None:
    from kartdata.errors import KartError

    with pytest.raises(KartError):
        PulseConfig(**bad)


class SteadyModel:
    """A model that runs THE preprocessing on every frame and always steers ``x``."""

    spec = InputSpec(height=12, width=16)
    targets = ("x",)
    kind = CONTINUOUS

    def __init__(self, x: float) -> None:
        self.x = x
        self.frames = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        for img in images:
            assert preprocess(img, self.spec).shape == self.spec.shape
        self.frames += len(images)
        return np.full((len(images), 1), self.x, np.float32)


def test_the_drive_loop_pulses_a_real_client_at_the_duty_cycle(xdisplay, key_log) -> None:  # type: ignore[no-untyped-def]
    """The key logger is the game: its window is captured, its events are the keys."""
    model = SteadyModel(0.4)
    config = DriveWindowConfig(
        model="(in process)", window="kartkit-key-log", display=xdisplay.name,
        pulse=PulseConfig(min_pulse_s=0.06), max_fps=30, max_seconds=6.0,
    )  # fmt: skip
    lines: list[str] = []
    decided: list[tuple[float, bool]] = []  # (loop time, Right held) at each step
    with WindowDriver(config, policy=Policy(model), status=lines.append) as driver:
        keyboard = driver.actuator
        assert isinstance(keyboard, KeyboardActuator)
        apply = keyboard.apply

        def watched(pad: Pad, now: float) -> None:
            apply(pad, now)
            decided.append((now, "Right" in keyboard.keyboard.held))

        keyboard.apply = watched  # type: ignore[method-assign]
        stats = driver.run(threading.Event())
    assert stats.ended == "time" and model.frames == stats.steps + 1  # +1: the warm-up
    assert stats.steps == len(decided) >= 60
    assert 0 < stats.policy_fps <= 31  # the cap holds
    assert 0 < stats.latency_ms_p50 <= stats.latency_ms_p99
    assert lines and "policy" in lines[-1] and "capture→keys p50" in lines[-1]
    # the loop's own decisions: duty 0.4, to within the longest step (a step the
    # scheduler stalls with the key down is paid back later, but not after the end)
    t = [a for a, _ in decided]
    on = sum(b - a for (a, held), b in zip(decided, t[1:], strict=False) if held)
    longest = max(b - a for a, b in itertools.pairwise(t))
    assert abs(on / (t[-1] - t[0]) - 0.4) <= 0.03 + longest / (t[-1] - t[0]), (on, longest)
    # the X client received exactly those pulses: one press and one release each
    d = open_display(xdisplay.name)
    right = keycode(d, "Right")
    d.close()
    pulses = sum(
        1 for (_, a), (_, b) in itertools.pairwise([(0.0, False), *decided]) if b and not a
    )
    events = [(k, ms) for k, c, ms in key_log.until(2 * pulses) if c == right]
    assert [k for k, _ in events] == ["press", "release"] * pulses  # released at the end, too
    presses = [(a[1], b[1]) for a, b in zip(events[::2], events[1::2], strict=True)]
    assert pulses >= 10
    # presses long enough for the game: the minimum on the loop's clock, less the
    # jitter of a busy machine between two sends (X server times are whole ms);
    # the last press may be cut short by the end, which releases at once
    lengths = sorted(b - a for a, b in presses[:-1])
    assert lengths[len(lengths) // 10] >= 60 - 10, lengths
