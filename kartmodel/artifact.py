"""Exported models that carry their own preprocessing contract.

``export(run, format)`` writes a directory::

    model.keras | saved_model/ | model.tflite     the model
    kartkit.json                                  input spec, targets, classes, versions

and :func:`load_artifact` gives an :class:`Artifact` whose ``predict`` takes
raw uint8 frames and runs :func:`kartdata.preprocess.preprocess` itself, so a
player cannot feed the model differently from how it was trained. An artifact
made with another preprocessing version is refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from kartdata.errors import ModelError
from kartdata.preprocess import PREPROCESS_VERSION, InputSpec, preprocess
from kartdata.schema import ClassThresholds
from kartmodel.run import Run, Which, kartkit_version
from kartmodel.targets import Kind, TargetLayout

ARTIFACT_FILE = "kartkit.json"
ARTIFACT_FORMAT = "kartkit-model"
ARTIFACT_VERSION = 1
Format = Literal["keras", "savedmodel", "tflite"]
FORMATS: tuple[str, ...] = get_args(Format)
MODEL_FILES: dict[str, str] = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
}


def export(
    run_path: str | Path,
    format: Format = "keras",
    out: str | Path | None = None,
    which: Which = "best",
) -> Path:
    """Write the run's ``best`` (or ``last``) model as ``format`` into ``out``
    (default ``RUN/export/<format>``); returns the artifact directory."""
    if format not in FORMATS:
        raise ModelError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    run = Run.open(run_path)
    model, row = run.load_model(which)
    out = Path(out) if out is not None else run.path / "export" / format
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / MODEL_FILES[format]
    if format == "keras":
        model.save(target)
    elif format == "savedmodel":
        _saved_model(model, target)
    else:
        target.write_bytes(_tflite(model))
    meta = {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "kartkit": kartkit_version(),
        "model": run.config.model,
        "model_format": format,
        "file": MODEL_FILES[format],
        "input": run.spec.to_json(),
        "targets": run.layout.to_json(),
        "classes": run.classes.to_json(),
        "checkpoint": which,
        "epoch": row.get("epoch"),
        "metrics": {k: v for k, v in row.items() if k.startswith("val_")},
        "dataset": run.config.dataset,
    }
    (out / ARTIFACT_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return out


def _saved_model(model: Any, path: Path) -> None:
    # A named, batch-polymorphic signature: what TF Serving and the TFLite
    # converter both read.
    model.export(str(path), format="tf_saved_model", verbose=False)


def _tflite(model: Any) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        _saved_model(model, Path(tmp) / "sm")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "sm"))
        return bytes(converter.convert())


@dataclass
class Artifact:
    """An exported model ready to drive: ``predict(frames)`` → ``[N, len(targets)]``."""

    path: Path
    spec: InputSpec
    targets: tuple[str, ...]
    kind: Kind
    classes: ClassThresholds
    model_name: str
    format: str
    meta: dict[str, Any]
    _runner: Any = field(default=None, repr=False)

    @property
    def layout(self) -> TargetLayout:
        return TargetLayout(self.targets, self.kind, self.meta["targets"].get("source", ""))

    def inputs(self, images: Any) -> np.ndarray:
        """uint8 frames (any size, ``(H, W, 3)`` or ``(N, H, W, 3)``) → the
        preprocessed float batch; float input must already be ``spec.shape``."""
        a = np.asarray(images)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ModelError(f"predict: expected RGB image(s) (H, W, 3), got shape {a.shape}")
        if a.dtype == np.uint8:
            return np.asarray(_traced_preprocess()(a, self.spec), dtype=np.float32)
        if np.issubdtype(a.dtype, np.floating):
            if a.shape[1:] != self.spec.shape:
                raise ModelError(
                    f"predict: float input must be preprocessed to {self.spec.shape}, got "
                    f"{a.shape[1:]}; pass uint8 frames to have them preprocessed"
                )
            return a.astype(np.float32)
        raise ModelError(f"predict: images must be uint8 or float, not {a.dtype}")

    def predict(self, images: Any) -> np.ndarray:
        x = self.inputs(images)
        if self._runner is None:
            self._runner = _runner(self.path / self.meta["file"], self.format)
        return np.asarray(self._runner(x), dtype=np.float32)


_PREPROCESS: Any = None


def _traced_preprocess() -> Any:
    """THE preprocessing function, traced by tf.function (the same ops; eager it
    costs ~6 ms a frame, traced well under 1)."""
    global _PREPROCESS
    if _PREPROCESS is None:
        import tensorflow as tf

        _PREPROCESS = tf.function(preprocess, reduce_retracing=True)
    return _PREPROCESS


def load_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    f = path / ARTIFACT_FILE
    if not f.is_file():
        raise ModelError(f"{f}: missing; not an exported kartkit model (run `kartmodel export`)")
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"{f}: not a kartkit model description")
    try:
        version = int(meta["input"]["version"])
        if version != PREPROCESS_VERSION:
            raise ModelError(
                f"{f}: model was trained with preprocessing version {version}, this kartkit "
                f"has {PREPROCESS_VERSION}; re-export it with a matching kartkit"
            )
        spec = InputSpec.from_json(meta["input"])
        targets = TargetLayout.from_json(meta["targets"])
        classes = ClassThresholds.from_json(meta["classes"])
        fmt = meta["model_format"]
        model_file = path / meta["file"]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{f}: malformed model description ({e})") from None
    if fmt not in FORMATS:
        raise ModelError(f"{f}: unknown model format {fmt!r}")
    if not model_file.exists():
        raise ModelError(f"{model_file}: model file missing from the artifact")
    return Artifact(path, spec, targets.names, targets.kind, classes, meta["model"], fmt, meta)


def _runner(model_file: Path, fmt: str) -> Any:
    if fmt == "keras":
        import keras
        import tensorflow as tf

        model = keras.models.load_model(model_file, compile=False)
        # traced once: an eager call costs ~40 ms a frame for PilotNet on 2
        # cores, the traced graph ~2 ms (benchmarks/play.py)
        call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: call(tf.constant(x)).numpy()
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(model_file))
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    return _TFLiteRunner(model_file)


class _TFLiteRunner:
    def __init__(self, model_file: Path) -> None:
        try:  # LiteRT, tf.lite's successor, when installed
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():
            # tf.lite's deprecation notice; the file format is the same either way
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=str(model_file))
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = -1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self.batch:
            self.interpreter.resize_tensor_input(self.input, list(x.shape))
            self.interpreter.allocate_tensors()
            self.batch = x.shape[0]
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()
