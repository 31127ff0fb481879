"""Typed training configuration, saved as ``run.json`` in the run directory so
that ``--resume``, ``evaluate`` and ``export`` rebuild exactly what trained.

The loader's own configs nest here (:class:`~kartdata.targets.TargetConfig`,
:class:`~kartdata.split.SplitConfig`, :class:`~kartdata.augment.AugmentConfig`) rather than being copied field by field,
and each option is checked once: the trainer's in :meth:`TrainConfig.__post_init__`,
the loader's by the loader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from kartdata.augment import AugmentConfig
from kartdata.balance import Balance
from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartdata.split import SplitConfig
from kartdata.targets import CLASS3, TENSORKART, TargetConfig
from kartmodel import models
from kartmodel.models import LOSS_NAMES, LossName, ModelName
from kartmodel.targets import CONTINUOUS, TargetLayout

Schedule = Literal["cosine", "exponential", "constant"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
MixedPrecision = Literal["auto", "on", "off"]
MIXED_PRECISION: tuple[str, ...] = get_args(MixedPrecision)


@dataclass(frozen=True)
class DataOptions:
    """What the trainer asks of ``kartdata``'s loader for the training split
    (validation always reads the recorded mix, without balance or augmentation)."""

    #: What the model learns to predict (``kind``), with label smoothing and
    #: lookahead; ``None``: the model's default kind, unsmoothed.
    targets: TargetConfig | None = None
    #: Which sessions are held out for validation.
    splits: SplitConfig = field(default_factory=SplitConfig)
    balance: Balance = None
    recovery_weight: float = 1.0
    #: ``True``: the loader's default :class:`~kartdata.augment.AugmentConfig`.
    augment: bool | AugmentConfig = True
    shuffle_buffer: int = 2048


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    model: ModelName = "pilotnet"
    #: ``None``: the model's default.
    loss: LossName | None = None
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
    mixed_precision: MixedPrecision = "auto"
    log_every: int = 20
    data: DataOptions = field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        models.defaults(self.model)
        if self.epochs < 1 or self.batch_size < 1:
            raise KartError(f"epochs {self.epochs} and batch size {self.batch_size} must be ≥ 1")
        if self.schedule not in SCHEDULES:
            raise KartError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise KartError(
                f"mixed precision {self.mixed_precision!r} is not one of "
                f"{', '.join(MIXED_PRECISION)}"
            )
        if self.learning_rate <= 0:
            raise KartError(f"learning rate {self.learning_rate} must be positive")
        for name in ("steps_per_epoch", "val_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise KartError(f"{name} {v} must be ≥ 1")
        if self.loss is not None and self.loss not in LOSS_NAMES:
            raise KartError(f"unknown loss {self.loss!r}; expected one of {', '.join(LOSS_NAMES)}")
        if self.target_config.class_format != "onehot":
            raise KartError("the trainer needs one-hot class targets (class_format 'onehot')")
        if self.layout.kind == CLASS3 and self.loss_name != "crossentropy":
            raise KartError(f"class3 targets need the crossentropy loss, not {self.loss_name!r}")
        if self.layout.kind == CONTINUOUS and self.loss_name == "crossentropy":
            raise KartError("crossentropy needs class3 targets")
        self.spec  # noqa: B018 - raises on a bad input size

    # -- resolved values -----------------------------------------------------

    @property
    def target_config(self) -> TargetConfig:
        """The loader's targets: ``data.targets``, or the model's default kind."""
        return self.data.targets or TargetConfig(kind=models.defaults(self.model).targets)

    @property
    def layout(self) -> TargetLayout:
        kind = self.target_config.kind
        named = not isinstance(kind, str) or kind in (TENSORKART, CLASS3)
        return TargetLayout.parse(kind if named else (kind,))

    @property
    def loss_name(self) -> LossName:
        if self.loss:
            return self.loss
        if self.layout.kind == CLASS3:
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
        steering = self.layout.kind == CLASS3 or self.layout.steering_index is not None
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
        obj = _nested(obj)
        known = {f.name for f in fields(cls)}
        d = dict(obj.get("data", {}))
        targets = d.get("targets")
        if targets is not None:
            kind = targets["kind"]
            d["targets"] = TargetConfig(
                **{
                    **targets,
                    "kind": kind if isinstance(kind, str) else tuple(kind),
                    "smooth_fields": tuple(targets.get("smooth_fields", ("x", "y"))),
                }
            )
        if isinstance(d.get("augment"), dict):
            d["augment"] = AugmentConfig(**d["augment"])
        splits = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("splits", {}).items()}
        d["splits"] = SplitConfig(**splits)
        data = DataOptions(**d)
        return cls(**{k: v for k, v in obj.items() if k in known and k != "data"}, data=data)

    def with_epochs(self, epochs: int | None) -> TrainConfig:
        return self if epochs is None else replace(self, epochs=epochs)


def _nested(obj: dict[str, Any]) -> dict[str, Any]:
    """A run.json written before the loader's configs nested here (top-level
    ``targets``; ``smooth``, ``lookahead``, ``val_fraction``, ``val_sessions``
    in ``data``) in today's form, so older runs still evaluate, export and resume."""
    data = dict(obj.get("data", {}))
    if "splits" in data:
        return obj
    smooth, lookahead = data.pop("smooth", 1), data.pop("lookahead", 0)
    data["splits"] = {
        "val_fraction": data.pop("val_fraction", 0.1),
        "val_sessions": data.pop("val_sessions", None),
    }
    kind = obj.get("targets")
    if kind is not None or smooth != 1 or lookahead != 0:
        default = models.defaults(obj.get("model", "pilotnet")).targets
        layout = TargetLayout.parse(kind or default)
        data["targets"] = {
            "kind": layout.loader_targets,
            "smoothing": smooth,
            "lookahead": lookahead,
        }
    else:
        data["targets"] = None
    return {**{k: v for k, v in obj.items() if k != "targets"}, "data": data}
