"""Exported PilotNets (66x200, outputs x, a, b) that learnt nothing: seeded
random weights, or an answer fixed by the output layer's biases. They are the
baselines the benchmarks measure a clone against (the gas held, steering
straight) and the models the play-side tests drive real windows and games
with; written by :mod:`kartmodel.run` and exported by :mod:`kartmodel.artifact`
like any trained model, so what they see still goes through the whole path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # kartmodel.artifact imports TensorFlow: only when exporting
    from kartmodel.artifact import Format


def export_untrained_pilotnet(
    run_dir: Path,
    *,
    seed: int,
    bias: tuple[float, float, float] | None = None,
    gain: float = 1.0,
    fmt: Format = "keras",
) -> Path:
    """``bias=None``: the seeded random weights, the output layer's scaled by
    ``gain`` (large: the pad varies with what is on screen). A ``bias`` fixes
    the answer instead: zero output weights, the pre-softsign outputs given."""
    import keras

    from kartdata.schema import ClassThresholds
    from kartdata.targets import TargetConfig
    from kartmodel.artifact import export
    from kartmodel.config import DataOptions, TrainConfig
    from kartmodel.run import BEST_WEIGHTS, Run

    keras.utils.set_random_seed(seed)
    config = TrainConfig(
        "unused",
        model="pilotnet",
        height=66,
        width=200,
        data=DataOptions(targets=TargetConfig(("x", "a", "b"))),
    )
    run = Run(run_dir, config, ClassThresholds())
    run.save()
    model = run.build_model()
    out = model.get_layer("outputs")
    if bias is None:
        out.set_weights([w * gain for w in out.get_weights()])
    else:
        w, _ = out.get_weights()
        out.set_weights([np.zeros_like(w), np.array(bias, dtype=np.float32)])
    model.save_weights(str(run.file(BEST_WEIGHTS)))
    return export(run.path, fmt)
