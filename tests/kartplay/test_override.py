"""Manual override and correction recording, driven by SDL virtual joysticks."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
from xvfb import poll

from kartdata.devices.gamepad import Gamepad
from kartdata.devices.sdl_virtual import SdlVirtualPad
from kartdata.schema import RECOVERY_TAG, Pad
from kartdata.sources.native import NativeSession
from kartplay.override import CorrectionConfig, CorrectionRecorder, ManualOverride

AI_PAD = Pad(x=0.25, y=0.0, buttons=frozenset({"a"}))
#: The raw button SDL maps to "back" (DEFAULT_OVERRIDE_BUTTON) on the virtual Xbox pad.
XBOX_BACK = 6


class ConstantAI:
    def __init__(self) -> None:
        self.steps = 0

    def latest(self, controller: int) -> Pad:
        return AI_PAD

    def step(self, controller: int, timeout: float) -> Pad | None:
        self.steps += 1
        return AI_PAD


class CountingFrames:
    """A frame source whose every frame carries its number in the first pixel row."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> np.ndarray:
        self.n += 1
        img = np.zeros((24, 32, 3), np.uint8)
        img[0, :, 0] = self.n % 256
        return img


def test_override_serves_the_human_only_while_the_button_is_held(tmp_path: Path) -> None:
    vp = SdlVirtualPad()
    try:
        ai = ConstantAI()
        frames = CountingFrames()
        recorder = CorrectionRecorder(
            CorrectionConfig(tmp_path / "corr", fps=40, game="mk64"), frames
        )
        changes: list[tuple[int, bool]] = []
        ov = ManualOverride(
            ai,
            takeover={0: Gamepad(vp.index)},
            recorder=recorder,
            on_change=lambda c, on: changes.append((c, on)),
        )
        vp.set_axis(0, 1.0)  # the human steers right with B held; not yet in control
        vp.set_button(2, True)
        ov.poll()
        assert ov.latest(0) == AI_PAD and not ov.overriding(0)
        assert ov.step(0, 1.0) == AI_PAD and ai.steps == 1
        assert ov.latest(1) == ai.latest(1)

        vp.set_button(XBOX_BACK, True)
        ov.poll()
        human = Pad(x=1.0, y=0.0, buttons=frozenset({"b"}))
        assert ov.overriding(0) and ov.latest(0) == human and ov.step(0, 1.0) == human
        assert ai.steps == 1  # the AI is not stepped while the human drives
        assert recorder.active
        first = poll(lambda: recorder.sessions[0] if recorder.sessions else None)
        assert poll(lambda: len((first / "controls.csv").read_text().splitlines()) >= 6)
        vp.set_axis(0, -1.0)
        ov.poll()
        assert ov.latest(0).x == -1.0
        assert poll(lambda: "-1.0" in (first / "controls.csv").read_text())

        vp.set_button(XBOX_BACK, False)
        ov.poll()
        assert not recorder.active and ov.latest(0) == AI_PAD
        # a second takeover is a second session
        vp.set_button(XBOX_BACK, True)
        ov.poll()
        assert poll(lambda: len(recorder.sessions) == 2)
        vp.set_button(XBOX_BACK, False)
        ov.poll()
        assert changes == [(0, True), (0, False), (0, True), (0, False)]
        assert ov.takeovers == 2 and recorder.error is None

        src = NativeSession(first)
        assert src.meta.tags == (RECOVERY_TAG,) and src.meta.game == "mk64"
        assert (src.meta.width, src.meta.height) == (32, 24)
        got = list(src.frames())
        assert len(got) >= 6
        assert all(RECOVERY_TAG in f.tags for f in got)
        assert {f.pad.x for f in got} == {1.0, -1.0}
        assert all("b" in f.pad.buttons for f in got)
        counters = [int(f.image()[0, 0, 0]) for f in got]
        assert counters == sorted(counters) and len(set(counters)) == len(counters)
        assert len(list(NativeSession(recorder.sessions[1]).frames())) >= 1
    finally:
        vp.close()


def test_two_players_through_the_play_server(tmp_path: Path) -> None:
    """Controller 0 the AI (human may take over), controller 1 always a person."""
    from kartplay.protocol import PadServer

    vps = [SdlVirtualPad(), SdlVirtualPad()]
    try:
        ov = ManualOverride(
            ConstantAI(),
            takeover={0: Gamepad(vps[0].index)},
            players={1: Gamepad(vps[1].index)},
            poll_hz=200,
        )
        vps[1].set_button(0, True)  # player 2 holds A
        vps[1].set_axis(1, 1.0)  # stick down
        with ov, PadServer(ov) as server:
            host, port = server.address

            def get(n: int) -> dict[str, int]:
                with urllib.request.urlopen(f"http://{host}:{port}/{n}", timeout=5) as r:
                    return json.loads(r.read())

            assert poll(lambda: get(1)["A_BUTTON"] == 1 and get(1)["Y_AXIS"] == -80)
            assert get(0)["X_AXIS"] == 20 and get(0)["A_BUTTON"] == 1  # the AI's 0.25
            vps[0].set_axis(0, -1.0)
            vps[0].set_button(XBOX_BACK, True)
            assert poll(lambda: get(0)["X_AXIS"] == -80 and get(0)["A_BUTTON"] == 0)
            vps[0].set_button(XBOX_BACK, False)
            assert poll(lambda: get(0)["X_AXIS"] == 20)
    finally:
        for vp in vps:
            vp.close()
