"""``kartplay drive-window`` as a user runs it: a real exported model drives a
real window through the virtual keyboard; after Ctrl-C, SIGTERM, SIGKILL or the
window closing the X server holds no key down; bad input is one line and a
non-zero exit, quickly. Takeovers through a real (SDL virtual) pad and through
the keyboard write correction sessions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from xvfb import poll

from kartdata.devices.keyboard import held_keycodes
from kartdata.devices.keymap import KeyMap
from kartdata.devices.x11 import keycode, open_display
from kartdata.schema import RECOVERY_TAG
from kartdata.sources.native import NativeSession

REPO = Path(__file__).resolve().parents[2]
DRIVE = [sys.executable, "-m", "kartplay.cli", "drive-window"]
TITLE = "kart-drive-test"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PilotNet (66x200, outputs x,a,b) exported by the real ``kartmodel.artifact``
    from a run directory (random seeded weights), as tests/kartplay/test_serve_model.py makes it."""
    import keras

    from kartdata.schema import ClassThresholds
    from kartdata.targets import TargetConfig
    from kartmodel.artifact import export
    from kartmodel.config import DataOptions, TrainConfig
    from kartmodel.run import BEST_WEIGHTS, Run

    keras.utils.set_random_seed(3)
    config = TrainConfig(
        "unused", model="pilotnet", height=66, width=200,
        data=DataOptions(targets=TargetConfig(("x", "a", "b"))),
    )  # fmt: skip
    run = Run(tmp_path_factory.mktemp("drive") / "run", config, ClassThresholds())
    run.save()
    model = run.build_model()
    model.save_weights(str(run.file(BEST_WEIGHTS)))
    return export(run.path, "keras")


def down(xdisplay) -> set[int]:  # type: ignore[no-untyped-def]
    d = open_display(xdisplay.name)
    try:
        return held_keycodes(d)
    finally:
        d.close()


def code(xdisplay, name: str) -> int:  # type: ignore[no-untyped-def]
    d = open_display(xdisplay.name)
    try:
        return keycode(d, name)
    finally:
        d.close()


class Drive:
    """The command as a subprocess; stderr to a file nobody has to drain."""

    def __init__(self, xdisplay, *args: str, env: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in result)
        self.proc = subprocess.Popen(
            [*DRIVE, *args],
            cwd=REPO,
            env={**(env if env is not None else xdisplay.env), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def result(self, timeout: float = 60) -> tuple[int, str, str]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        return self.proc.returncode, out, err


def start_drive(xdisplay, artifact: Path, *extra: str) -> Drive:  # type: ignore[no-untyped-def]
    # --hold a: the policy holds its gas button, so the 'a' key must be down
    return Drive(
        xdisplay, str(artifact), "--window", TITLE, "--display", xdisplay.name,
        "--hold", "a", "--max-fps", "20", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL", "window closes"])
def test_no_key_is_left_down_however_it_ends(xdisplay, artifact: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    window = xdisplay.pattern_window(TITLE, 160, 120, noise=True)
    gas = code(xdisplay, "a")
    drive = start_drive(xdisplay, artifact)
    try:
        # a model loading in a subprocess on a busy machine: a minute at most
        assert poll(lambda: gas in down(xdisplay) or drive.proc.poll() is not None, 90)
        assert gas in down(xdisplay), drive.result(5)
        if how == "window closes":
            window.kill()
            window.wait()
        else:
            drive.proc.send_signal(getattr(signal, how))
        rc, out, err = drive.result(timeout=60)
    finally:
        if drive.proc.poll() is None:
            drive.proc.kill()
    # the guard releases after a SIGKILL; every other way releases before exit
    assert poll(lambda: gas not in down(xdisplay), 10)
    assert not down(xdisplay) & {code(xdisplay, k) for k in KeyMap().key_names()}
    assert "Traceback" not in err
    if how == "SIGKILL":
        assert rc == -signal.SIGKILL
        return
    assert rc == 0, err
    ended = {"SIGINT": "interrupted", "SIGTERM": "stopped", "window closes": "window closed"}[how]
    assert out.startswith(f"{ended}: "), out
    steps = int(out.split(": ")[1].split()[0])
    assert steps > 0 and "capture→keys p50" in out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("keymap-json", r"^error: .*keys\.json:2: not valid JSON"),
        ("keymap-key", r"^error: .*keys\.json: key 'NoSuchKey' is not a key on this X display"),
        ("no-window", r"^error: no window titled 'no such game' within 0\.5 s$"),
        ("no-display", r"^error: no X display: set DISPLAY"),
        ("bad-display", r"^error: cannot open X display ':4321'"),
        ("gamepad", r"^error: virtual gamepad: "),
        ("rescue-button", r"^error: rescue button 'rescue' is not one of dpad_right, "),
        ("rescue-after", r"^error: rescue still -1\.0 is not a positive number$"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(  # type: ignore[no-untyped-def]
    xdisplay, tmp_path: Path, case: str, message: str
) -> None:
    xdisplay.pattern_window(TITLE, 96, 64)
    keys = tmp_path / "keys.json"
    keys.write_text('{"stick": {"left": "Left"},\n  "buttons": {"a": ["a"],}}')
    if case == "keymap-key":
        keys.write_text(json.dumps({"stick": {"left": "NoSuchKey"}}))
    args = ["model-not-loaded", "--window", TITLE, "--window-wait", "0.5"]
    env = None
    if case.startswith("keymap"):
        args += ["--keymap", str(keys)]
    elif case == "no-window":
        args[2] = "no such game"
    elif case == "no-display":
        env = {k: v for k, v in xdisplay.env.items() if k != "DISPLAY"}
    elif case == "bad-display":
        args += ["--display", ":4321"]
    elif case == "gamepad":
        args += ["--gamepad"]
    elif case == "rescue-button":
        args += ["--rescue-button", "rescue"]
    elif case == "rescue-after":
        args += ["--rescue-button", "c_up", "--rescue-after", "-1"]
    if case == "gamepad" and Path("/dev/uinput").exists():
        message = r"^error: .*model-not-loaded"  # the pad opens; the missing model is next
    rc, _, err = Drive(xdisplay, *args, env=env).result(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1, err
    import re

    assert re.search(message, lines[0]), lines[0]


def test_takeovers_with_a_pad_and_with_a_key_record_corrections(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """In-process (an SDL virtual pad exists only in the process that made it)."""
    import numpy as np

    from kartdata.devices.sdl_virtual import SdlVirtualPad
    from kartmodel.targets import CONTINUOUS
    from kartplay.override import CorrectionConfig
    from kartplay.policy import Policy
    from kartplay.window import DriveWindowConfig, WindowDriver

    class Steady:
        from kartdata.preprocess import InputSpec

        spec = InputSpec(height=12, width=16)
        targets = ("x", "a")
        kind = CONTINUOUS

        def predict(self, images: np.ndarray) -> np.ndarray:
            return np.tile(np.float32([1.0, 1.0]), (len(images), 1))  # right, gas

    xdisplay.pattern_window(TITLE, 96, 64, noise=True)
    right, gas, ctrl = (code(xdisplay, k) for k in ("Right", "a", "Control_R"))
    # 1) a pad's Back button (raw 6 on the virtual Xbox pad) takes over
    with SdlVirtualPad() as vp:
        config = DriveWindowConfig(
            model="(in process)", window=TITLE, display=xdisplay.name, max_fps=30,
            override_pad=vp.index,
            corrections=CorrectionConfig(tmp_path / "pad", fps=20, game="testgame"),
        )  # fmt: skip
        stop = threading.Event()
        with WindowDriver(config, policy=Policy(Steady())) as driver:
            t = threading.Thread(target=driver.run, args=(stop,))
            t.start()
            try:
                assert poll(lambda: {right, gas} <= down(xdisplay))
                vp.set_axis(0, -1.0)  # the human steers left
                vp.set_button(6, True)
                assert poll(lambda: not {right, gas} & down(xdisplay))  # the AI let go
                assert poll(lambda: driver.recorder is not None and driver.recorder.sessions)
                session = driver.recorder.sessions[0]  # type: ignore[union-attr]
                assert poll(lambda: (session / "controls.csv").exists()
                            and len((session / "controls.csv").read_text().splitlines()) > 6)  # fmt: skip
                vp.set_button(6, False)
                assert poll(lambda: {right, gas} <= down(xdisplay))  # the AI again
            finally:
                stop.set()
                t.join(timeout=30)
        assert not {right, gas} & down(xdisplay)
    frames = list(NativeSession(session).frames())
    assert frames and all(f.pad.x == -1.0 and RECOVERY_TAG in f.tags for f in frames)
    assert NativeSession(session).meta.game == "testgame"
    # 2) holding a key takes over: the AI releases its keys while it is down
    config = DriveWindowConfig(
        model="(in process)", window=TITLE, display=xdisplay.name, max_fps=30,
        override_key="Control_R", corrections=CorrectionConfig(tmp_path / "key"),
    )  # fmt: skip
    stop = threading.Event()
    with WindowDriver(config, policy=Policy(Steady())) as driver:
        t = threading.Thread(target=driver.run, args=(stop,))
        t.start()
        try:
            assert poll(lambda: {right, gas} <= down(xdisplay))
            xdisplay.xdotool("keydown", "Control_R")
            xdisplay.xdotool("keydown", "Left")
            try:
                assert poll(lambda: not {right, gas} & down(xdisplay) and ctrl in down(xdisplay))
                assert poll(lambda: driver.recorder is not None and driver.recorder.sessions)
                assert driver.status_line().startswith("HUMAN")
                session = driver.recorder.sessions[0]  # type: ignore[union-attr]
                assert poll(lambda: (session / "controls.csv").exists()
                            and len((session / "controls.csv").read_text().splitlines()) > 4)  # fmt: skip
            finally:
                xdisplay.xdotool("keyup", "Left")
                xdisplay.xdotool("keyup", "Control_R")
            assert poll(lambda: {right, gas} <= down(xdisplay))
        finally:
            stop.set()
            t.join(timeout=30)
        assert driver.override is not None and driver.override.takeovers == 1
    frames = list(NativeSession(session).frames())
    assert any(f.pad.x == -1.0 for f in frames)
