"""Fixtures that make real recordings on disk, in every layout."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from xvfb import xvfb

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


# -- a real X display (issue 8: capture, recorder, override) -------------------


class XDisplay:
    """A private Xvfb server, with helpers for starting real windows on it."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.env = {**os.environ, "DISPLAY": name}
        self._children: list[subprocess.Popen[bytes]] = []

    def pattern_window(
        self,
        title: str,
        width: int = 160,
        height: int = 120,
        x: int = 40,
        y: int = 30,
        noise: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start tests/pattern_window.py and wait for its first frame."""
        script = Path(__file__).with_name("pattern_window.py")
        proc = subprocess.Popen(
            [sys.executable, str(script), title, str(width), str(height), str(x), str(y)]
            + (["noise"] if noise else []),
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._children.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            proc.kill()
            raise RuntimeError(f"pattern window did not start (got {line!r})")
        return proc

    def xdotool(self, *args: str) -> str:
        out = subprocess.run(
            ["xdotool", *args], env=self.env, check=True, capture_output=True, timeout=30
        )
        return out.stdout.decode()

    def close(self) -> None:
        for p in self._children:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def xdisplay() -> Iterator[XDisplay]:
    """A private Xvfb on a free display number."""
    try:
        with xvfb() as (proc, name):
            xd = XDisplay(name, proc)
            try:
                yield xd
            finally:
                xd.close()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture
def preprocess_spy(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Wraps the shared preprocessing function: ``calls`` gets the InputSpec
    of every call; ``undo()`` puts back ``original``."""
    import kartdata.preprocess

    calls: list[object] = []
    original = kartdata.preprocess.preprocess

    def spy(image, spec):  # type: ignore[no-untyped-def]
        calls.append(spec)
        return original(image, spec)

    monkeypatch.setattr(kartdata.preprocess, "preprocess", spy)
    return SimpleNamespace(calls=calls, original=original, undo=monkeypatch.undo)
