"""Typed training configuration, saved as ``run.json`` in the run directory so
that ``--resume``, ``evaluate`` and ``export`` rebuild exactly what trained."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartmodel import models
from kartmodel.targets import TargetLayout

Schedule = Literal["cosine", "exponential", "constant"]
SCHEDULES: tuple[str, ...] = ("cosine", "exponential", "constant")


@dataclass(frozen=True)
class DataOptions:
    """Passed through to ``kartdata.load`` for the training split (validation
    always reads the recorded mix, without augmentation)."""

    balance: str | None = None
    recovery_weight: float = 1.0
    smooth: int = 1
    lookahead: int = 0
    augment: bool = True
    val_fraction: float = 0.1
    #: Sessions (keys or unique key prefixes) held out for validation instead
    #: of a hashed ``val_fraction``.
    val_sessions: tuple[str, ...] | None = None
    shuffle_buffer: int = 2048


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    model: str = "pilotnet"
    #: ``tensorkart``, ``class3`` or comma-separated pad fields; ``None``: the model's default.
    targets: str | None = None
    loss: str | None = None
    #: Model input; ``None``: the model's default (66x200 PilotNet, 90x160 categorical).
    height: int | None = None
    width: int | None = None
    crop_top: float = 0.0
    crop_bottom: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    #: ``None``: one pass over the training split's epoch plan.
    steps_per_epoch: int | None = None
    val_steps: int | None = None
    learning_rate: float = 1e-3
    schedule: Schedule = "cosine"
    warmup_epochs: float = 0.0
    #: Exponential schedule: the factor per epoch.
    decay_rate: float = 0.5
    #: ``val_<metric>`` that picks the best checkpoint; ``None``: balanced accuracy
    #: where the targets have steering, else the validation loss.
    monitor: str | None = None
    seed: int | None = None
    deterministic: bool = False
    #: ``auto``: mixed float16 when a GPU is present.
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    log_every: int = 20
    data: DataOptions = field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        models.module(self.model)
        if self.epochs < 1 or self.batch_size < 1:
            raise KartError(f"epochs {self.epochs} and batch size {self.batch_size} must be ≥ 1")
        if self.schedule not in SCHEDULES:
            raise KartError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.learning_rate <= 0:
            raise KartError(f"learning rate {self.learning_rate} must be positive")
        for name in ("steps_per_epoch", "val_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise KartError(f"{name} {v} must be ≥ 1")
        if self.layout.kind == "class3" and self.loss_name != "crossentropy":
            raise KartError(f"class3 targets need the crossentropy loss, not {self.loss_name!r}")
        if self.layout.kind == "continuous" and self.loss_name == "crossentropy":
            raise KartError("crossentropy needs class3 targets")

    # -- resolved values -----------------------------------------------------

    @property
    def layout(self) -> TargetLayout:
        return TargetLayout.parse(self.targets or models.defaults(self.model).targets)

    @property
    def loss_name(self) -> str:
        if self.loss:
            return self.loss
        if self.layout.kind == "class3":
            return "crossentropy"
        return models.defaults(self.model).loss

    @property
    def spec(self) -> InputSpec:
        d = models.defaults(self.model).spec
        try:
            return InputSpec(
                self.height or d.height, self.width or d.width, self.crop_top, self.crop_bottom
            )
        except ValueError as e:
            raise KartError(f"model input: {e}") from None

    @property
    def monitor_name(self) -> str:
        if self.monitor:
            return self.monitor
        steering = self.layout.kind == "class3" or self.layout.steering_index is not None
        return "val_balanced_accuracy" if steering else "val_loss"

    @property
    def monitor_mode(self) -> Literal["min", "max"]:
        name = self.monitor_name.removeprefix("val_")
        return "min" if name in ("loss", "steer_mae") else "max"

    # -- persistence ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = dict(obj.get("data", {}))
        if d.get("val_sessions") is not None:
            d["val_sessions"] = tuple(d["val_sessions"])
        data = DataOptions(**d)
        return cls(**{k: v for k, v in obj.items() if k in known and k != "data"}, data=data)

    def with_epochs(self, epochs: int | None) -> TrainConfig:
        return self if epochs is None else replace(self, epochs=epochs)
