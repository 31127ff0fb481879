"""A training run's directory: what ``train`` writes and ``evaluate``/``export`` read.

::

    RUN/
      run.json            TrainConfig, input spec, targets, class thresholds, kartkit version
      history.csv         one row per finished epoch (train and val_ metrics, lr, speed)
      ckpt/               tf.train.Checkpoint per epoch: model, optimizer, epoch, best value
      best.weights.h5     weights of the best epoch by the monitored validation metric
      tb/train, tb/val    TensorBoard event files
      eval/               what ``kartmodel evaluate`` saved
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, get_args

import keras

from kartdata import fs
from kartdata.errors import KartError
from kartdata.preprocess import InputSpec
from kartdata.schema import ClassThresholds
from kartmodel import models
from kartmodel.config import TrainConfig
from kartmodel.targets import TargetLayout

RUN_FILE = "run.json"
RUN_FORMAT = "kartkit-run"
HISTORY_FILE = "history.csv"
CKPT_DIR = "ckpt"
BEST_WEIGHTS = "best.weights.h5"
TB_DIR = "tb"
EVAL_DIR = "eval"

Which = Literal["best", "last"]
WHICH: tuple[str, ...] = get_args(Which)


def kartkit_version() -> str:
    try:
        return metadata.version("kartkit")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Run:
    path: Path
    config: TrainConfig
    classes: ClassThresholds

    @property
    def spec(self) -> InputSpec:
        return self.config.spec

    @property
    def layout(self) -> TargetLayout:
        return self.config.layout

    def file(self, name: str) -> Path:
        return self.path / name

    # -- persistence ---------------------------------------------------------

    def save(self) -> None:
        obj = {
            "format": RUN_FORMAT,
            "kartkit": kartkit_version(),
            "config": self.config.to_json(),
            "input": self.spec.to_json(),
            "targets": self.layout.to_json(),
            "classes": self.classes.to_json(),
        }
        self.path.mkdir(parents=True, exist_ok=True)
        fs.atomic_write(str(self.file(RUN_FILE)), (json.dumps(obj, indent=1) + "\n").encode())

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        f = path / RUN_FILE
        if not f.is_file():
            raise KartError(f"{f}: no run.json; not a kartmodel run directory")
        try:
            obj = json.loads(f.read_text())
            if obj.get("format") != RUN_FORMAT:
                raise KartError(f"{f}: not a kartmodel run (format {obj.get('format')!r})")
            return cls(
                path,
                TrainConfig.from_json(obj["config"]),
                ClassThresholds.from_json(obj["classes"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise KartError(f"{f}: malformed run file ({e})") from None

    # -- models --------------------------------------------------------------

    def build_model(self) -> keras.Model:
        return models.build(self.config.model, self.spec, self.layout)

    def load_model(self, which: Which = "best") -> tuple[keras.Model, dict[str, Any]]:
        """A float32 model with the ``best`` or ``last`` epoch's weights, and
        what is known about that epoch (its history row)."""
        import tensorflow as tf

        if which not in WHICH:
            raise KartError(f"checkpoint {which!r} is not one of {', '.join(WHICH)}")
        model = self.build_model()
        if which == "best":
            weights = self.file(BEST_WEIGHTS)
            if not weights.is_file():
                raise KartError(f"{weights}: no best weights yet (no epoch finished validation)")
            model.load_weights(str(weights))
            return model, self.best_row()
        latest = tf.train.latest_checkpoint(str(self.file(CKPT_DIR)))
        if latest is None:
            raise KartError(f"{self.file(CKPT_DIR)}: no checkpoint yet (no epoch finished)")
        epoch = tf.Variable(0, dtype=tf.int64)
        tf.train.Checkpoint(model=model, epoch=epoch).restore(latest).expect_partial()
        rows = [r for r in self.history() if int(r["epoch"]) == int(epoch.numpy())]
        return model, rows[-1] if rows else {"epoch": int(epoch.numpy())}

    def history(self) -> list[dict[str, Any]]:
        import csv

        f = self.file(HISTORY_FILE)
        if not f.is_file():
            return []
        with open(f, newline="") as fh:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh) if row]

    def best_row(self) -> dict[str, Any]:
        rows = [r for r in self.history() if r.get("best") == 1]
        return rows[-1] if rows else {}


def _number(v: str) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
