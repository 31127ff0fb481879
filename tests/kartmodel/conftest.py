"""A small real dataset and a trained run, made once per test module."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_datasets import make_dataset


@pytest.fixture(scope="package")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 120-frame synthetic sessions at 160x120; ``s3`` is held out."""
    return make_dataset(tmp_path_factory.mktemp("kartmodel"), sessions=4, frames=120)
