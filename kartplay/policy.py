"""From frames to a pad: an exported model plus the action selection.

Both play paths (``kartplay serve`` for the emulator, ``kartplay sim`` for the
simulator) decide through :class:`Policy`, so a model drives the same way in
both. The model artifact applies THE preprocessing itself
(:func:`kartdata.preprocess.preprocess` with the spec it was trained with);
this module only turns its outputs into a :class:`~kartdata.schema.Pad`:

- continuous models (outputs named after pad fields, e.g. ``x,a,b`` or
  TensorKart's ``x,y,a,b,r``): axes multiplied by ``axis_scale``, clipped to
  [-1, 1], zeroed inside ``deadzone``; buttons pressed at ``button_threshold``;
- class models (``left,straight,right`` probabilities, CTR-AI style): the
  steering class picked by weighted random choice (``sample``: CTR-AI found
  it beats argmax, which gets stuck against walls), ``argmax``, or the stick
  set to the expected deflection (``expected``: ``p_right - p_left``);
- optionally the raw outputs are smoothed across frames (an exponential
  moving average, separately for each controller slot) before selection;
- ``hold`` buttons are always pressed (CTR-AI held gas all the time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartdata.schema import AXES, BUTTONS, STEERING_CLASSES, Pad
from kartdata.targets import CLASS3
from kartmodel.targets import CONTINUOUS

Selection = Literal["sample", "argmax", "expected"]
SELECTIONS: tuple[str, ...] = ("sample", "argmax", "expected")


class Model(Protocol):
    """What a policy needs of a model: ``kartmodel.artifact.Artifact`` is one."""

    spec: InputSpec
    targets: tuple[str, ...]
    kind: str

    def predict(self, images: Any) -> np.ndarray:
        """uint8 frames ``(N, H, W, 3)`` → outputs ``(N, len(targets))``."""
        ...


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    #: Continuous models: stick = clip(output * axis_scale), 0 inside deadzone.
    axis_scale: float = 1.0
    deadzone: float = 0.0
    #: Continuous models: a button is pressed when its output reaches this.
    button_threshold: float = 0.5
    #: Class models: how the steering class is chosen.
    selection: Selection = "sample"
    #: Class models: stick deflection for the left/right classes.
    class_steer: float = 1.0
    #: Weight of the previous smoothed outputs in the moving average
    #: (0 = no smoothing; 0.5 averages over about three frames).
    smoothing: float = 0.0
    #: Buttons held on every frame whatever the model says (e.g. ``("a",)``:
    #: gas always held).
    hold: tuple[str, ...] = ()
    #: Seed of the weighted random choice (None: a fresh one).
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise KartError(f"selection {self.selection!r} is not one of {', '.join(SELECTIONS)}")
        if not 0.0 <= self.smoothing < 1.0:
            raise KartError(f"smoothing {self.smoothing} is not in [0, 1)")
        if not 0.0 <= self.deadzone < 1.0:
            raise KartError(f"deadzone {self.deadzone} is not in [0, 1)")
        unknown = [b for b in self.hold if b not in BUTTONS]
        if unknown:
            raise KartError(f"hold: unknown button(s) {', '.join(unknown)}")


@dataclass
class Policy:
    """A model and the rules that turn its outputs into pads.

    Smoothing state is kept per ``slot`` (a controller, or one of several
    simulator tracks driven in one batch); :meth:`reset` forgets it.
    """

    model: Model
    config: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        kind = self.model.kind
        targets = tuple(self.model.targets)
        if kind == CLASS3:
            if targets != tuple(STEERING_CLASSES):
                raise KartError(f"class model outputs {targets}, expected {STEERING_CLASSES}")
        elif kind == CONTINUOUS:
            unknown = [t for t in targets if t not in AXES and t not in BUTTONS]
            if unknown:
                raise KartError(f"model outputs unknown pad field(s) {', '.join(unknown)}")
        else:
            raise KartError(f"model kind {kind!r} is not {CONTINUOUS!r} or {CLASS3!r}")
        self._rng = np.random.default_rng(self.config.seed)
        self._state: dict[int, np.ndarray] = {}

    @property
    def spec(self) -> InputSpec:
        return self.model.spec

    def reset(self) -> None:
        self._state.clear()

    def act(self, frame: np.ndarray, slot: int = 0) -> Pad:
        """One uint8 RGB frame ``(H, W, 3)`` → the pad to play."""
        return self.decide(self.model.predict(np.asarray(frame)[None])[0], slot)

    def act_batch(self, frames: np.ndarray) -> list[Pad]:
        """Frames ``(N, H, W, 3)`` of N slots, one model call → N pads."""
        outputs = self.model.predict(np.asarray(frames))
        return [self.decide(row, slot) for slot, row in enumerate(outputs)]

    def decide(self, outputs: Any, slot: int = 0) -> Pad:
        """Model outputs for one frame → the pad (smoothing, then selection)."""
        out = np.asarray(outputs, dtype=np.float64).reshape(-1)
        if out.shape[0] != len(self.model.targets):
            raise KartError(
                f"model gave {out.shape[0]} outputs, its description names "
                f"{len(self.model.targets)}"
            )
        a = self.config.smoothing
        if a > 0:
            prev = self._state.get(slot)
            out = out if prev is None else a * prev + (1 - a) * out
            self._state[slot] = out
        if self.model.kind == CLASS3:
            return self._from_classes(out)
        return self._from_continuous(out)

    def _from_continuous(self, out: np.ndarray) -> Pad:
        c = self.config
        axes = {"x": 0.0, "y": 0.0}
        buttons = set(c.hold)
        for name, v in zip(self.model.targets, out, strict=True):
            if name in AXES:
                s = float(np.clip(v * c.axis_scale, -1.0, 1.0))
                axes[name] = 0.0 if abs(s) < c.deadzone else s
            elif v >= c.button_threshold:
                buttons.add(name)
        return Pad(x=axes["x"], y=axes["y"], buttons=frozenset(buttons))

    def _from_classes(self, out: np.ndarray) -> Pad:
        c = self.config
        p = np.clip(out, 0.0, None)
        total = p.sum()
        p = p / total if total > 0 else np.full(3, 1 / 3)
        left, _straight, right = range(3)
        if c.selection == "expected":
            x = c.class_steer * float(p[right] - p[left])
        else:
            k = int(np.argmax(p)) if c.selection == "argmax" else int(self._rng.choice(3, p=p))
            x = {left: -c.class_steer, right: c.class_steer}.get(k, 0.0)
        return Pad(x=float(np.clip(x, -1.0, 1.0)), buttons=frozenset(c.hold))


def load(path: str | Path, config: PolicyConfig | None = None) -> Policy:
    """The policy of an exported model directory (``kartmodel export``)."""
    from kartmodel.artifact import load_artifact

    return Policy(load_artifact(path), config or PolicyConfig())
