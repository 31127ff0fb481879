"""Build the plugin, its harness and fuzz target once per test session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugin"
BUILD = PLUGIN_DIR / "build"


@pytest.fixture(scope="session")
def built() -> Path:
    r = subprocess.run(
        ["make", "-C", str(PLUGIN_DIR), "all", "harness", "fuzz"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD


@pytest.fixture(scope="session")
def plugin_so(built: Path) -> Path:
    return built / "mupen64plus-input-kartbot.so"


@pytest.fixture(scope="session")
def harness(built: Path) -> Path:
    return built / "harness"
