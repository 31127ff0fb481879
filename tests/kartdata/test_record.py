"""The recorder against a real X server, real windows, real X key events, and an
SDL virtual joystick; crash safety with kill -9."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from xvfb import poll

from kartdata.devices.capture import Region, ScreenCapture, find_window, find_window_id
from kartdata.devices.controls import Controls, InputError
from kartdata.devices.gamepad import Gamepad
from kartdata.devices.sdl_virtual import SdlVirtualPad
from kartdata.record import (
    STATS_FILE,
    Player,
    Recorder,
    RecorderConfig,
    RecorderError,
    make_players,
)
from kartdata.schema import CONTROLS_FILE, RECOVERY_TAG, Pad
from kartdata.sources.native import NativeSession, TornRowWarning

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
KARTDATA = [sys.executable, "-m", "kartdata.cli"]


def rows(session: Path) -> list[dict[str, str]]:
    """Complete rows of a session being written (the last line may be partial)."""
    try:
        text = (session / CONTROLS_FILE).read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    header, body = lines[0].split(","), lines[1:-1]
    return [dict(zip(header, line.split(","), strict=True)) for line in body if line]


def is_pattern(img: np.ndarray) -> bool:
    h, w = img.shape[:2]
    return bool(
        (img[: h // 2, : w // 2] == RED).all()
        and (img[: h // 2, w // 2 :] == GREEN).all()
        and (img[h // 2 :, : w // 2] == BLUE).all()
        and (img[h // 2 :, w // 2 :] == WHITE).all()
    )


def frames_of(session: Path) -> list:  # type: ignore[type-arg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornRowWarning)
        return list(NativeSession(session).frames())


def start_cli(xdisplay, out: Path, *args: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [*KARTDATA, "record", "--out", str(out), "--display", xdisplay.name, *args],
        env={**xdisplay.env, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def hold(xdisplay, out: Path, key: str, cond) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Hold ``key`` until the recorded rows satisfy ``cond``, then release it."""
    xdisplay.xdotool("keydown", key)
    try:
        got = poll(lambda: (lambda r: r if cond(r) else None)(rows(out)))
    finally:
        xdisplay.xdotool("keyup", key)
    assert got, f"no recorded row showed {key} held"
    return got


def test_keyboard_recording_of_a_real_window(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xdisplay.pattern_window("kart-rec-test", 120, 90, x=30, y=40)
    out = tmp_path / "rec"
    proc = start_cli(
        xdisplay, out, "--window", "kart-rec", "--keyboard", "--fps", "20", "--player", "ann",
        "--game", "mk64", "--track", "luigi",
    )  # fmt: skip
    try:
        session = out / "ann-001"
        assert poll(lambda: len(rows(session)) >= 3), proc.stderr.read1(4000)  # type: ignore[union-attr]
        # steer right and accelerate: Right arrow and 'a' (the default key map)
        xdisplay.xdotool("keydown", "Right")
        hold(xdisplay, session, "a", lambda r: any(x["x"] == "1.0" and x["a"] == "1" for x in r))
        xdisplay.xdotool("keyup", "Right")
        # F7 marks the start of a recovery segment; a second press marks its end
        n_before = len(rows(session))
        hold(xdisplay, session, "F7", lambda r: any(RECOVERY_TAG in x["tags"] for x in r))
        hold(xdisplay, session, "Left", lambda r: r[-1]["x"] == "-1.0")
        hold(xdisplay, session, "F7", lambda r: r[-1]["tags"] == "")
        # the window moves; the capture follows it
        wid = find_window_id("kart-rec-test", xdisplay.name)
        xdisplay.xdotool("windowmove", str(wid), "400", "300")
        assert poll(
            lambda: find_window("kart-rec-test", xdisplay.name) == Region(400, 300, 120, 90)
        )
        n_moved = len(rows(session))
        assert poll(lambda: len(rows(session)) >= n_moved + 5)
        hold(xdisplay, session, "F10", lambda r: proc.poll() is not None)  # quit
        assert proc.wait(timeout=20) == 0, proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = proc.stdout.read().decode()  # type: ignore[union-attr]
    assert "ann:" in summary and "dropped" in summary and str(session) in summary

    src = NativeSession(session)
    assert (src.meta.game, src.meta.track, src.meta.player) == ("mk64", "luigi", "ann")
    assert (src.meta.width, src.meta.height, src.meta.fps) == (120, 90, 20.0)
    frames = list(src.frames())
    assert len(frames) == len(rows(session)) >= n_moved + 5
    # every frame is the window's pixels, before and after the move
    # a frame grabbed in the instant between looking the window up and grabbing
    # it may show where the window just left; at most one per move
    assert sum(not is_pattern(f.image()) for f in frames) <= 1
    assert is_pattern(frames[-1].image())
    t = [f.t_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(t))
    assert [f.index for f in frames] == list(range(len(frames)))
    pads = [f.pad for f in frames]
    assert Pad(1.0, 0.0, frozenset({"a"})) in pads
    rec = [f for f in frames if RECOVERY_TAG in f.tags]
    assert rec and any(f.pad.x == -1.0 for f in rec)
    assert all(f.index >= n_before for f in rec)
    assert not any(RECOVERY_TAG in f.tags for f in frames[-3:])
    stats = json.loads((session / STATS_FILE).read_text())
    assert stats["frames"] == len(frames)
    # every deadline of the take became a frame or a counted drop (the window
    # move, a busy machine); the quit press and the last deadline may be neither
    deadlines = stats["elapsed_s"] * 20
    assert deadlines - 3 <= stats["frames"] + stats["dropped"] <= deadlines + 1, stats
    # a fixed-rate schedule never runs fast; drops make it slower, not faster
    assert 0 < stats["achieved_fps"] <= 20 * 1.02


def test_kill_9_leaves_a_valid_session(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xdisplay.pattern_window("kart-kill-test", 160, 120, x=0, y=0, noise=True)
    out = tmp_path / "rec"
    proc = start_cli(xdisplay, out, "--region", "0,0,160,120", "--keyboard", "--fps", "30")
    session = out / "player-001"
    try:
        assert poll(lambda: len(rows(session)) >= 25), proc.stderr.read1(4000)  # type: ignore[union-attr]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (session / STATS_FILE).exists()  # it really died mid-take
    frames = frames_of(session)
    assert len(frames) >= 25
    assert all((f.image()[:60, :80] == RED).all() for f in frames)
    assert [f.index for f in frames] == list(range(len(frames)))
    # the session is readable by the rest of the pipeline, where it has landed
    r = subprocess.run(
        [*KARTDATA, "validate", "--no-store", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    ds = tmp_path / "ds"
    r = subprocess.run(
        [*KARTDATA, "shard", str(out), "--out", str(ds), "--workers", "0"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    manifest = json.loads((ds / "manifest.json").read_text())
    (entry,) = manifest["sessions"]
    assert entry["source"] == str(session) and entry["frames_written"] == len(frames), entry
    assert manifest["frames"] == len(frames)


class ScriptedInput:
    """An input whose read() blocks once for ``stall_s`` (a slow machine)."""

    def __init__(self, stall_at: int, stall_s: float) -> None:
        self.n, self.stall_at, self.stall_s = 0, stall_at, stall_s

    def read(self) -> Controls:
        self.n += 1
        if self.n == self.stall_at:
            end = time.monotonic() + self.stall_s
            while time.monotonic() < end:
                pass
        return Controls(Pad(x=0.5))

    def close(self) -> None:
        pass


def test_missed_deadlines_are_counted_as_dropped(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    region = Region(0, 0, 64, 48)
    player = Player("p", lambda: region, (64, 48), ScriptedInput(stall_at=5, stall_s=0.45))
    cfg = RecorderConfig(out=tmp_path, fps=20, max_frames=20, image_format="jpg")
    with ScreenCapture(xdisplay.name) as cap:
        stats = Recorder(cfg, [player], cap).run()["p"]
    # 0.45 s at 20 fps spans 9 deadlines: at least 8 of them went by unused
    assert stats.dropped >= 8
    frames = frames_of(tmp_path / "p-001")
    assert len(frames) == stats.frames == 20
    gaps = np.diff([f.t_ns for f in frames]) / 1e9
    assert gaps.max() >= 0.4  # the hole is visible in the timestamps too
    on_disk = json.loads((tmp_path / "p-001" / STATS_FILE).read_text())
    assert on_disk["dropped"] == stats.dropped


def test_gamepad_hotkeys_and_two_players(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xdisplay.pattern_window("kart-2p-test", 200, 100, x=10, y=10)
    pads = [SdlVirtualPad(), SdlVirtualPad()]
    try:
        players = make_players(
            window="kart-2p-test", pads=[pads[0].index, pads[1].index],
            names=["left", "right"], display=xdisplay.name,
        )  # fmt: skip
        assert [p.size for p in players] == [(100, 100), (100, 100)]
        cfg = RecorderConfig(out=tmp_path, fps=20, discard_s=0.5)
        stop = threading.Event()
        with ScreenCapture(xdisplay.name) as cap:
            rec = Recorder(cfg, players, cap)
            t = threading.Thread(target=rec.run, args=(stop,))
            t.start()
            try:
                left, right = tmp_path / "left-001", tmp_path / "right-001"
                pads[0].set_axis(0, -1.0)  # left stick full left
                pads[0].set_axis(1, -1.0)  # and up (SDL: up is negative)
                pads[0].set_button(0, True)  # A
                pads[1].set_hat(0, (0, 1))  # d-pad up
                pads[1].set_axis(5, 1.0)  # right trigger → R
                assert poll(lambda: any(r["x"] == "-1.0" and r["y"] == "1.0" and r["a"] == "1"
                                        for r in rows(left)))  # fmt: skip
                assert poll(lambda: any(r["dpad_up"] == "1" and r["r"] == "1" for r in rows(right)))
                # Back marks recovery on player 2 only
                pads[1].set_button(6, True)
                assert poll(lambda: any(RECOVERY_TAG in r["tags"] for r in rows(right)))
                pads[1].set_button(6, False)
                assert not any(RECOVERY_TAG in r["tags"] for r in rows(left))
                # right stick click discards the last 0.5 s (10 frames) of player 1
                assert poll(lambda: len(rows(left)) >= 12)
                n = len(rows(left))
                pads[0].set_button(10, True)
                assert poll(lambda: len(rows(left)) < n)
                pads[0].set_button(10, False)
                # Guide stops the take; pressing it again starts the next take
                pads[0].set_button(8, True)
                assert poll(lambda: (left / STATS_FILE).exists())
                pads[0].set_button(8, False)
                pads[1].set_button(8, True)
                assert poll(lambda: len(rows(tmp_path / "right-002")) >= 2)
                pads[1].set_button(8, False)
            finally:
                stop.set()
                t.join(timeout=30)
        stats = rec.stats
        assert stats["left"].sessions == [str(left), str(tmp_path / "left-002")]
        assert json.loads((left / STATS_FILE).read_text())["discarded"] >= 10
        for side, (a, b) in (("left", (RED, BLUE)), ("right", (GREEN, WHITE))):
            frames = frames_of(tmp_path / f"{side}-001")
            img = frames[-1].image()
            assert img.shape == (100, 100, 3)
            assert (img[:50] == a).all() and (img[50:] == b).all()
        assert Pad(-1.0, 1.0, frozenset({"a"})) in [f.pad for f in frames_of(left)]
    finally:
        for p in pads:
            p.close()


def test_gamepad_absent_and_bad_options_are_one_line_errors(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no gamepad 7"):
        Gamepad(7)
    with pytest.raises(RecorderError, match="exactly one of"):
        make_players(keyboard=True, display=xdisplay.name)
    with pytest.raises(RecorderError, match="fps"):
        RecorderConfig(out=tmp_path, fps=0)
    r = subprocess.run(
        [*KARTDATA, "record", "--out", str(tmp_path), "--region", "1,2", "--keyboard"],
        capture_output=True, text=True, env=xdisplay.env,
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().startswith("error: region '1,2'")
    assert "Traceback" not in r.stderr
