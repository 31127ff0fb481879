"""Real exported models for the play-side tests: a PilotNet (66x200, outputs
x, a, b) with its output layer set so the test knows what the model answers."""

from __future__ import annotations

from pathlib import Path

from kartmodel.untrained import export_untrained_pilotnet


def export_pilotnet(
    run_dir: Path, *, seed: int, bias: tuple[float, float, float] | None = None
) -> Path:
    """``bias=None``: random (seeded) weights with the output layer scaled up, so
    the pad varies with what is on screen. A ``bias`` fixes the answer instead:
    zero output weights, and the pre-softsign outputs (x, a, b) given; what the
    model sees still goes through capture, preprocessing, the model and policy."""
    return export_untrained_pilotnet(run_dir, seed=seed, bias=bias, gain=20.0)
