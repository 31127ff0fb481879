"""Fixtures that make real recordings on disk, in every layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kartdata import synth


@pytest.fixture
def native_session(tmp_path: Path) -> Path:
    """A 40-frame native session at 320x240 with a recovery segment."""
    return synth.make_native(tmp_path / "native", 40, width=320, height=240, recovery_share=0.25)


@pytest.fixture
def tensorkart_session(tmp_path: Path) -> Path:
    """A 30-frame TensorKart session at 320x240."""
    return synth.make_tensorkart(tmp_path / "2017-01-05_12:00:00", 30, width=320, height=240)


@pytest.fixture
def ctr_file(tmp_path: Path) -> Path:
    """A 50-frame CTR-AI recovery-mode .npy."""
    return synth.make_ctr(tmp_path / "ctr", 50, mode="A")
