"""notebooks/explore.ipynb runs top to bottom on a small generated dataset."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from loader_dataset import make_dataset
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore.ipynb"


def test_explore_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "cache"))  # the verdict store
    dataset = make_dataset(tmp_path, sessions=3, frames=40, validate=True, black_frames=(3, 4))
    monkeypatch.setenv("KARTKIT_DATASET", str(dataset))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # The kernel must import this checkout's kartkit, as the tests do.
    root = str(NOTEBOOK.parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert str(dataset) in outputs
    assert "repeats" in outputs and "measured" in outputs
    images = sum(
        1 for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})
    )
    assert images >= 5  # class mix, steering, flagged gallery, sample strip, training batch
    assert "2 flagged frames" in outputs
    assert "hard-left frames on" in outputs
    # the DuckDB query over the Parquet sidecars ran (its table is shown)
    assert "mean_abs_x" in outputs and "DuckDB is not installed" not in outputs
