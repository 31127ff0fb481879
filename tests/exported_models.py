"""Real exported models for the play-side tests: a PilotNet (66x200, outputs
x, a, b) written by ``kartmodel.run`` and exported by ``kartmodel.artifact``,
with its output layer set so the test knows what the model answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def export_pilotnet(
    run_dir: Path, *, seed: int, bias: tuple[float, float, float] | None = None
) -> Path:
    """``bias=None``: random (seeded) weights with the output layer scaled up, so
    the pad varies with what is on screen. A ``bias`` fixes the answer instead:
    zero output weights, and the pre-softsign outputs (x, a, b) given; what the
    model sees still goes through capture, preprocessing, the model and policy."""
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
        out.set_weights([w * 20 for w in out.get_weights()])
    else:
        w, _ = out.get_weights()
        out.set_weights([np.zeros_like(w), np.array(bias, dtype=np.float32)])
    model.save_weights(str(run.file(BEST_WEIGHTS)))
    return export(run.path, "keras")
