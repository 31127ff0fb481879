"""Action selection on known model outputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartplay.policy import Policy, PolicyConfig


@dataclass
class FakeModel:
    """Returns queued outputs and records what it was fed."""

    targets: tuple[str, ...]
    kind: str = "continuous"
    spec: InputSpec = field(default_factory=lambda: InputSpec(8, 8))
    outputs: list[list[float]] = field(default_factory=list)
    seen: list[np.ndarray] = field(default_factory=list)

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.seen.append(images)
        n = images.shape[0]
        rows, self.outputs = self.outputs[:n], self.outputs[n:]
        return np.asarray(rows, dtype=np.float32)


def continuous(*rows: list[float], targets=("x", "a", "b"), **cfg) -> tuple[Policy, FakeModel]:
    m = FakeModel(targets, outputs=[list(r) for r in rows])
    return Policy(m, PolicyConfig(**cfg)), m


FRAME = np.zeros((96, 96, 3), np.uint8)


def test_continuous_axes_scaled_clipped_and_deadzoned() -> None:
    pol, _ = continuous([0.3, 0, 0], [0.6, 0, 0], [-0.04, 0, 0], axis_scale=2.0, deadzone=0.1)
    assert pol.act(FRAME).x == pytest.approx(0.6)
    assert pol.act(FRAME).x == 1.0  # 1.2 clipped
    assert pol.act(FRAME).x == 0.0  # -0.08 is inside the deadzone


def test_continuous_buttons_by_threshold_and_tensorkart_layout() -> None:
    m = FakeModel(("x", "y", "a", "b", "r"), outputs=[[-0.5, 0.25, 0.71, 0.69, 0.1]])
    pad = Policy(m, PolicyConfig(button_threshold=0.7)).act(FRAME)
    assert (pad.x, pad.y) == (-0.5, 0.25)
    assert pad.buttons == frozenset({"a"})


def test_gas_always_held() -> None:
    pol, _ = continuous([0.0, 0.0, 1.0], hold=("a",))
    assert pol.act(FRAME).buttons == frozenset({"a", "b"})
    cls = FakeModel(("left", "straight", "right"), "class3", outputs=[[0, 1, 0]])
    assert Policy(cls, PolicyConfig(selection="argmax", hold=("a",))).act(FRAME).buttons == {"a"}


def test_argmax_and_expected_selection() -> None:
    rows = [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]]
    m = FakeModel(("left", "straight", "right"), "class3", outputs=rows)
    pol = Policy(m, PolicyConfig(selection="argmax", class_steer=0.8))
    assert [pol.act(FRAME).x for _ in rows] == [-0.8, 0.8, 0.0]
    m.outputs = list(rows)
    pol = Policy(m, PolicyConfig(selection="expected"))
    assert [pol.act(FRAME).x for _ in rows] == pytest.approx([-0.5, 0.6, 0.1])


def test_weighted_random_follows_the_probabilities_and_the_seed() -> None:
    n = 4000
    probs = [0.2, 0.5, 0.3]

    def draw(seed: int) -> list[float]:
        m = FakeModel(("left", "straight", "right"), "class3", outputs=[probs] * n)
        pol = Policy(m, PolicyConfig(selection="sample", seed=seed))
        return [p.x for p in pol.act_batch(np.zeros((n, 4, 4, 3), np.uint8))]

    xs = draw(7)
    counts = Counter(xs)
    # Binomial standard deviation at n=4000 is under 0.008: 0.03 is ~4 sigma.
    assert counts[-1.0] / n == pytest.approx(0.2, abs=0.03)
    assert counts[0.0] / n == pytest.approx(0.5, abs=0.03)
    assert counts[1.0] / n == pytest.approx(0.3, abs=0.03)
    assert xs == draw(7)
    assert xs != draw(8)


def test_smoothing_is_a_moving_average_per_slot() -> None:
    pol, m = continuous([1.0, 1, 0], [0.0, 0, 0], [0.0, 0, 0], smoothing=0.5)
    xs = [pol.act(FRAME).x for _ in range(3)]
    assert xs == pytest.approx([1.0, 0.5, 0.25])
    # Slots do not share state; reset forgets it.
    m.outputs = [[0.0, 0, 0], [-1.0, 0, 0]]
    pads = pol.act_batch(np.zeros((2, 96, 96, 3), np.uint8))
    assert [p.x for p in pads] == pytest.approx([0.125, -1.0])
    pol.reset()
    m.outputs = [[0.2, 0, 0]]
    assert pol.act(FRAME).x == pytest.approx(0.2)


def test_smoothed_buttons_release_after_a_glitch() -> None:
    pol, _ = continuous([0, 1, 0], [0, 0, 0], [0, 0, 0], smoothing=0.5)
    assert ["a" in pol.act(FRAME).buttons for _ in range(3)] == [True, True, False]


def test_frames_reach_the_model_unchanged() -> None:
    pol, m = continuous([0, 0, 0])
    frame = np.arange(96 * 96 * 3, dtype=np.uint8).reshape(96, 96, 3)
    pol.act(frame)
    assert m.seen[0].shape == (1, 96, 96, 3) and m.seen[0].dtype == np.uint8
    assert np.array_equal(m.seen[0][0], frame)


def test_bad_models_and_configs_are_refused() -> None:
    with pytest.raises(KartError, match="unknown pad field"):
        Policy(FakeModel(("x", "gas")))
    with pytest.raises(KartError, match="class model"):
        Policy(FakeModel(("a", "b", "c"), "class3"))
    with pytest.raises(KartError, match="smoothing"):
        PolicyConfig(smoothing=1.0)
    with pytest.raises(KartError, match="hold"):
        PolicyConfig(hold=("gas",))
    pol, _ = continuous([0.1, 0.2])
    with pytest.raises(KartError, match="2 outputs"):
        pol.act(FRAME)
