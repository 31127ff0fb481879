"""Build the plugin (product and test builds), its harness and fuzz target once
per test session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugin"
BUILD = PLUGIN_DIR / "build"


@pytest.fixture(scope="session")
def built() -> Path:
    r = subprocess.run(
        ["make", "-C", str(PLUGIN_DIR), "all", "test-plugin", "harness", "fuzz"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD


@pytest.fixture(scope="session")
def plugin_so(built: Path) -> Path:
    """The product build: what `make -C plugin` installs."""
    return built / "mupen64plus-input-kartbot.so"


@pytest.fixture(scope="session")
def hooked_plugin_so(built: Path) -> Path:
    """The tests' build, with the trace / RDRAM dump / stop hooks compiled in."""
    return built / "mupen64plus-input-kartbot-test.so"


@pytest.fixture(scope="session")
def harness(built: Path) -> Path:
    return built / "harness"
