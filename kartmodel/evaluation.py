"""Metrics of a trained run on a dataset, per session and overall.

Streams the dataset through the same loader as training (no augmentation, no
balancing: the recorded mix), with each example's session key, so a model that
drives one track well and another badly shows it. Sessions are identified by
key; each also carries its recording's name (``name``) for people to read.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.errors import ModelError
from kartdata.loader import build, dataset_errors, prepare
from kartdata.schema import FEATURE_SESSION
from kartdata.split import recording_name
from kartmodel import losses
from kartmodel.config import TrainConfig
from kartmodel.metrics import Totals, batch_stats
from kartmodel.run import EVAL_DIR, Run, Which
from kartmodel.trainer import load_config


@dataclass(frozen=True)
class Evaluation:
    run: str
    dataset: str
    split: str
    checkpoint: str
    epoch: Any
    overall: dict[str, Any]
    sessions: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "dataset": self.dataset,
            "split": self.split,
            "checkpoint": self.checkpoint,
            "epoch": self.epoch,
            "overall": self.overall,
            "sessions": self.sessions,
        }


def _summary(t: Totals) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in t.result().items()
    }
    if t.confusion.sum():
        out["confusion"] = t.confusion_json()
    return out


def evaluate(
    run_path: str | Path,
    dataset: str,
    split: str = "val",
    which: Which = "best",
    batch_size: int | None = None,
    save: bool = True,
) -> Evaluation:
    """``split``: ``val`` (the run's held-out sessions), ``train`` or ``all``;
    on another dataset than the run's, ``all`` is usually what is meant."""
    import dataclasses

    run = Run.open(run_path)
    model, row = run.load_model(which)
    cfg: TrainConfig = dataclasses.replace(
        run.config, dataset=str(dataset), batch_size=batch_size or run.config.batch_size
    )
    load_cfg = dataclasses.replace(load_config(cfg, split), with_meta=True, shuffle=False)
    prep = prepare(str(dataset), load_cfg)
    if prep.manifest.classes != run.classes:
        print(
            f"warning: {dataset} classifies steering with {prep.manifest.classes}, the run "
            f"with {run.classes}; metrics use the run's",
            file=sys.stderr,
        )
    loss_fn = losses.get(cfg.loss_name)
    layout = run.layout
    overall = Totals(layout)
    per_session: dict[str, Totals] = {}
    with dataset_errors():
        for images, targets, meta in build(prep):
            pred = model(images, training=False)
            per_example = loss_fn(targets, pred).numpy()
            keys = [k.decode() for k in meta[FEATURE_SESSION].numpy()]
            y, p = targets.numpy(), pred.numpy()
            for key in dict.fromkeys(keys):
                mask = np.array([k == key for k in keys])
                stats = {
                    k: np.asarray(v)
                    for k, v in batch_stats(layout, run.classes, y[mask], p[mask]).items()
                }
                stats["loss_sum"] = per_example[mask].sum()
                stats["loss_weight"] = float(mask.sum())
                per_session.setdefault(key, Totals(layout)).add(stats)
    if not per_session:
        raise ModelError(f"{dataset}: split {split!r} gave no examples to evaluate")
    for t in per_session.values():
        overall.merge(t)
    names = {s.key: recording_name(s.source) for s in prep.manifest.sessions}
    result = Evaluation(
        str(run.path),
        str(dataset),
        prep.split,
        which,
        row.get("epoch"),
        _summary(overall),
        {k: {"name": names.get(k, k), **_summary(t)} for k, t in sorted(per_session.items())},
    )
    if save:
        out = run.path / EVAL_DIR
        out.mkdir(exist_ok=True)
        name = f"{Path(str(dataset)).name or 'dataset'}-{prep.split}-{which}.json"
        (out / name).write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return result


_COLUMNS = (
    ("examples", "examples", "{:.0f}"),
    ("loss", "loss", "{:.4f}"),
    ("steer_mae", "steer MAE", "{:.4f}"),
    ("balanced_accuracy", "bal. acc", "{:.3f}"),
    ("left_recall", "left R", "{:.3f}"),
    ("straight_recall", "str. R", "{:.3f}"),
    ("right_recall", "right R", "{:.3f}"),
    ("button_accuracy", "buttons", "{:.3f}"),
)


def format_table(ev: Evaluation) -> str:
    cols = [c for c in _COLUMNS if c[0] in ev.overall]
    width = max([len(k) for k in ev.sessions] + [7]) + 2
    names = {k: str(m.get("name", "")) for k, m in ev.sessions.items()}
    name_width = max([len(n) for n in names.values()] + [4]) + 2
    head = f"{'session':<{width}}{'name':<{name_width}}"
    lines = [head + "".join(f"{h:>11}" for _, h, _ in cols)]

    def line(key: str, name: str, m: dict[str, Any]) -> str:
        cells = []
        for col, _, fmt in cols:
            v = m.get(col)
            cells.append(f"{'-' if v is None else fmt.format(v):>11}")
        return f"{key:<{width}}{name:<{name_width}}" + "".join(cells)

    lines += [line(k, names[k], m) for k, m in ev.sessions.items()]
    lines.append(line("overall", "", ev.overall))
    conf = ev.overall.get("confusion")
    if conf:
        lines.append("")
        lines.append("confusion (rows: true, columns: predicted)")
        lines.append(f"{'':>10}" + "".join(f"{c:>10}" for c in conf["classes"]))
        for c, row in zip(conf["classes"], conf["counts"], strict=True):
            lines.append(f"{c:>10}" + "".join(f"{n:>10}" for n in row))
    return "\n".join(lines)
