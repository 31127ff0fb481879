"""``kartplay serve MODEL`` end to end: a real exported PilotNet, a real window on a
private Xvfb display captured with mss, the real protocol server polled over HTTP,
and manual override / correction recording driven by SDL virtual joysticks."""

from __future__ import annotations

import functools
import json
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exported_models import export_pilotnet
from xvfb import poll as _poll

from kartdata.devices.capture import Region, ScreenCapture
from kartdata.schema import RECOVERY_TAG
from kartdata.sources import open_source
from kartplay.override import CorrectionConfig
from kartplay.pad import NEUTRAL, to_json_obj
from kartplay.policy import Policy, PolicyConfig
from kartplay.protocol import ServerConfig

TITLE = "kartkit serve test"
WINDOW = Region(40, 30, 160, 120)  # where conftest's pattern window sits
RED = Region(40, 30, 80, 60)  # its top-left quadrant
#: Its four solid quadrants: red, green, blue, white.
QUADRANTS = [RED, Region(120, 30, 80, 60), Region(40, 90, 80, 60), Region(120, 90, 80, 60)]
#: The tiny model's outputs are about ±0.05; a button threshold inside that
#: range makes the served buttons depend on the model too.
THRESHOLD = 0.3
REPO = Path(__file__).resolve().parents[2]
#: Waits here cover a model loading in a subprocess: 30 s, not the default.
poll = functools.partial(_poll, timeout_s=30.0)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PilotNet (66x200, outputs x,a,b) exported by the real ``kartmodel.artifact``
    from a run directory written by ``kartmodel.run``: random weights, seeded,
    with the output layer scaled up so that the pad varies with what is on screen."""
    return export_pilotnet(tmp_path_factory.mktemp("serve") / "run", seed=3)


def expected_pad(art: Path, display: str, region: Region) -> dict[str, int]:
    """What the policy answers for what is on screen now: the same artifact, the
    same capture, the same preprocessing (inside ``Artifact.predict``)."""
    from kartmodel.artifact import load_artifact

    with ScreenCapture(display) as cap:
        frame = cap.grab(region)
    policy = Policy(load_artifact(art), PolicyConfig(button_threshold=THRESHOLD))
    return to_json_obj(policy.act(frame))


def same_pad(got: dict[str, int], want: dict[str, int]) -> bool:
    # Two processes may round a float differently at the last bit, which can move
    # an axis across a rounding boundary: one protocol unit is allowed there.
    axes = ("X_AXIS", "Y_AXIS")
    if any(abs(got[k] - want[k]) > 1 for k in axes):
        return False
    return {k: v for k, v in got.items() if k not in axes} == {
        k: v for k, v in want.items() if k not in axes
    }


def get(port: int, controller: int = 0, timeout: float = 10.0) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{controller}", timeout=timeout) as r:
        return json.loads(r.read())


class Serve:
    """``kartplay serve`` as a subprocess, its stdout read by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        # a file, not a pipe: nobody reads stderr while the server runs
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kartplay.cli", "serve", *args],
            cwd=REPO,
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.wait_line(lambda line: "kartplay serve:" in line, 120)
        self.port = int(re.search(r":(\d+)/", first).group(1))  # type: ignore[union-attr]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, pred: Callable[[str], bool], timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                self.stderr.seek(0)
                raise AssertionError(
                    f"no such line from kartplay serve; stderr: {self.stderr.read()}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if pred(line):
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.stderr.close()


@pytest.fixture
def screen(xdisplay: Any) -> Iterator[Any]:
    xdisplay.pattern_window(TITLE, WINDOW.width, WINDOW.height, WINDOW.x, WINDOW.y)
    yield xdisplay


#: Each figure of the status line by its own label (``inference p50`` and
#: ``capture p50`` are two figures, not one ``p50``).
STATUS_FIGURES = {
    "polls/s": r"polls/s\s+(\S+)",
    "frames/s": r"frames/s\s+(\S+)",
    "inference p50": r"inference p50 (\S+) ms",
    "inference p99": r"inference p50 \S+ ms p99 (\S+) ms",
    "capture p50": r"capture p50 (\S+) ms",
    "steps": r"steps (\d+)",
}


def status_numbers(line: str) -> dict[str, float]:
    found = {k: re.search(pattern, line) for k, pattern in STATUS_FIGURES.items()}
    return {k: float(m.group(1)) for k, m in found.items() if m}


def test_status_numbers_reads_each_figure_by_its_label() -> None:
    line = (
        "free-run  polls/s   12.0  frames/s  30.5  inference p50 2.5 ms p99 7.0 ms"
        "  capture p50 1.2 ms  steps 40  c0 AI"
    )
    assert status_numbers(line) == {
        "polls/s": 12.0,
        "frames/s": 30.5,
        "inference p50": 2.5,
        "inference p99": 7.0,
        "capture p50": 1.2,
        "steps": 40,
    }


def test_serve_model_free_run_serves_the_policy_for_the_screen(artifact: Path, screen: Any) -> None:
    # The test only shows the capture reaches the model if the region matters:
    # serve a quadrant whose pad differs from the whole window's.
    other = expected_pad(artifact, screen.name, WINDOW)
    candidates = [expected_pad(artifact, screen.name, q) for q in QUADRANTS]
    differing = [i for i, pad in enumerate(candidates) if not same_pad(pad, other)]
    assert differing, (candidates, other)
    region, want = QUADRANTS[differing[0]], candidates[differing[0]]
    serve = Serve(
        [
            str(artifact),
            "--region",
            str(region),
            "--port",
            "0",
            "--button-threshold",
            str(THRESHOLD),
        ],
        screen.env,
    )
    try:
        assert poll(lambda: same_pad(get(serve.port), want)), (get(serve.port), want)
        for _ in range(20):  # free-run answers at once, and keeps answering the same
            assert same_pad(get(serve.port), want)
        line = serve.wait_line(lambda s: "frames/s" in s and status_numbers(s)["polls/s"] > 0)
        n = status_numbers(line)
        assert line.startswith("free-run") and "c0 AI" in line, line
        assert n["frames/s"] > 0, line
        assert 0 < n["inference p50"] <= n["inference p99"] < 5000, line
        assert 0 < n["capture p50"] < 5000, line
        assert n["steps"] >= 1, line
    finally:
        rc = serve.stop()
    assert rc == 0


def test_serve_model_lockstep_follows_the_window_one_step_per_poll(
    artifact: Path, screen: Any
) -> None:
    want = expected_pad(artifact, screen.name, WINDOW)
    serve = Serve(
        [
            str(artifact),
            "--window",
            TITLE,
            "--mode",
            "lockstep",
            "--polls-per-step",
            "2",
            "--port",
            "0",
            "--button-threshold",
            str(THRESHOLD),
        ],
        screen.env,
    )
    try:
        # no poll yet, so no step: the agent waits for the emulator
        idle = serve.wait_line(lambda s: "steps" in s)
        assert status_numbers(idle)["steps"] == 0, idle
        got = [get(serve.port) for _ in range(6)]
        assert all(same_pad(g, want) for g in got), (got, want)
        # 6 polls at 2 per step: exactly 3 agent steps, each on a fresh frame
        line = serve.wait_line(lambda s: "steps" in s and status_numbers(s)["steps"] >= 3)
        assert status_numbers(line)["steps"] == 3 and line.startswith("lockstep"), line
    finally:
        rc = serve.stop()
    assert rc == 0


def test_override_and_second_player_through_the_server(
    artifact: Path, screen: Any, tmp_path: Path
) -> None:
    """In-process (an SDL virtual joystick exists only in the process that made it),
    but built by the same :class:`Serving` the CLI runs."""
    from kartdata.devices.sdl_virtual import SdlVirtualPad
    from kartplay.serve import ServeOptions, Serving

    want = expected_pad(artifact, screen.name, RED)
    with ScreenCapture(screen.name) as cap:
        red = cap.grab(RED)
    pads = [SdlVirtualPad(), SdlVirtualPad()]
    human, second = pads
    opts = ServeOptions(
        model=str(artifact),
        region=str(RED),
        display=screen.name,
        server=ServerConfig(port=0),
        policy=PolicyConfig(button_threshold=THRESHOLD),
        override_pad=human.index,
        human_pad=second.index,
        corrections=CorrectionConfig(tmp_path / "corr", fps=30, game="mk64"),
        status=False,
    )
    try:
        second.set_button(0, True)  # player 2 holds A, stick down
        second.set_axis(1, 1.0)
        human.set_axis(0, 1.0)  # the human steers right with B, not yet in control
        human.set_button(2, True)
        with Serving(opts) as s:
            _, port = s.address
            assert poll(lambda: same_pad(get(port), want))
            assert poll(lambda: get(port, 1)["A_BUTTON"] == 1 and get(port, 1)["Y_AXIS"] == -80)
            assert s.controller_state(0) == "AI" and s.controller_state(1) == "HUMAN"
            assert s.recorder is not None and not s.recorder.sessions

            human.set_button(6, True)  # raw Back: SDL's "back", the override
            human_pad = {**to_json_obj(NEUTRAL), "X_AXIS": 80, "B_BUTTON": 1}
            assert poll(lambda: get(port) == human_pad), get(port)
            assert s.controller_state(0) == "OVERRIDE" and "c0 OVERRIDE" in s.status_line()
            session = poll(lambda: s.recorder.sessions[0] if s.recorder.sessions else None)
            assert poll(lambda: len((session / "controls.csv").read_text().splitlines()) > 6)

            human.set_button(6, False)
            assert poll(lambda: same_pad(get(port), want))
            assert s.controller_state(0) == "AI"
            # the pad flips back before the recorder has finished its last row
            assert poll(lambda: not s.recorder.active)
            line = s.status_line()
            assert "c0 AI" in line and "takeovers 1" in line and "corrections 1" in line, line
            assert get(port, 1)["A_BUTTON"] == 1  # player 2 never left
            s.check()
    finally:
        for vp in pads:
            vp.close()

    src = open_source(session)
    assert src.meta.tags == (RECOVERY_TAG,) and src.meta.game == "mk64"
    frames = list(src.frames())
    assert len(frames) > 5
    for f in frames:
        assert RECOVERY_TAG in f.tags
        assert f.pad.x == 1.0 and f.pad.buttons == frozenset({"b"})
        assert np.array_equal(f.image(), red)  # what the agent was looking at


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kartplay.cli", "serve", *args],
        cwd=REPO,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_serve_arguments_are_one_line_errors(
    artifact: Path, xdisplay: Any, tmp_path: Path
) -> None:
    env = xdisplay.env
    cases = [
        ([str(artifact)], "needs frames"),
        ([str(tmp_path), "--region", "0,0,10,10"], "kartkit.json: missing"),
        ([str(artifact), "--region", "0,0,10"], "not X,Y,W,H"),
        ([str(artifact), "--region", "0,0,10,10", "--override-pad", "7"], "no gamepad 7"),
        ([str(artifact), "--region", "0,0,10,10", "--record-corrections", "x"], "--override-pad"),
        ([str(artifact), "--window", "no such window", "--window-wait", "0.2"], "no window"),
    ]
    for args, message in cases:
        r = run_cli(args, {**env, "SDL_VIDEODRIVER": "dummy"})
        assert r.returncode != 0, (args, r.stdout)
        err = r.stderr.strip().splitlines()
        assert err and err[-1].startswith("error:") and message in err[-1], (args, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr


def test_lockstep_takeover_records_fresh_frames_without_stepping_the_ai(
    artifact: Path, screen: Any, tmp_path: Path
) -> None:
    """In lockstep the AI is not stepped while the human drives, so the recorder
    must capture by itself instead of reusing the agent's last frame."""
    from kartdata.devices.sdl_virtual import SdlVirtualPad
    from kartplay.serve import ServeOptions, Serving

    vp = SdlVirtualPad()
    opts = ServeOptions(
        model=str(artifact),
        region=str(WINDOW),
        display=screen.name,
        server=ServerConfig(port=0, mode="lockstep"),
        policy=PolicyConfig(button_threshold=THRESHOLD),
        override_pad=vp.index,
        corrections=CorrectionConfig(tmp_path / "corr", fps=30),
        status=False,
    )
    try:
        with Serving(opts) as s:
            _, port = s.address
            assert same_pad(get(port), expected_pad(artifact, screen.name, WINDOW))
            assert s.agent is not None and s.recorder is not None
            assert s.agent.steps == 1 and s.feed is not None
            vp.set_axis(0, -1.0)
            vp.set_button(6, True)  # raw Back: SDL's "back", the override
            # no poll before the override is in force, or it would step the AI
            assert poll(lambda: s.controller_state(0) == "OVERRIDE")
            steps, grabs = s.agent.steps, len(s.feed.capture_ms)
            assert all(get(port)["X_AXIS"] == -80 for _ in range(5))
            session = poll(lambda: s.recorder.sessions[0] if s.recorder.sessions else None)
            assert poll(lambda: len((session / "controls.csv").read_text().splitlines()) > 16)
            assert s.agent.steps == steps  # the human's polls never reached the AI
            assert len(s.feed.capture_ms) - grabs > 10  # so the recorder grabbed them
            vp.set_button(6, False)
            assert poll(lambda: not s.recorder.active)
            s.check()
    finally:
        vp.close()
    frames = list(open_source(session).frames())
    assert len(frames) > 10
    assert all(f.pad.x == -1.0 and f.image().shape == (120, 160, 3) for f in frames)
