"""The plugin inside the real emulator running a generated test ROM (see
tests/plugin/real_emulator.py), against kartplay serving scripted pads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from real_emulator import Emulator, script

from kartdata import synth
from kartdata.schema import Pad
from kartdata.sources import open_source
from kartplay import pad as padmod
from kartplay.agent import LatestPads, ScriptedPads
from kartplay.protocol import PadServer, ServerConfig


@pytest.fixture
def served() -> list[int]:
    return []


def test_free_run_game_reads_what_kartplay_served(tmp_path, hooked_plugin_so, served):
    frames = 150
    cfg = ServerConfig(port=0)
    on_serve = lambda c, p: served.append(padmod.to_word(p)) if c == 0 else None  # noqa: E731
    with PadServer(ScriptedPads({0: script(5000)}), cfg, on_serve=on_serve) as srv:
        emu = Emulator(tmp_path, hooked_plugin_so, srv.address[1], frames + 1)
        try:
            log = emu.finish()
        finally:
            emu.kill()
    assert log.frames == frames
    # Free-run: each frame reads the latest pad the plugin's thread fetched, so
    # the game's words are the served sequence, in order, with repeats/skips.
    start = next(i for i, v in enumerate(log.values) if v != 0)
    assert start < 10 and all(v == 0 for v in log.values[:start])  # before the first reply
    pos = 0
    for v in log.values[start:]:
        while served[pos] != v:
            pos += 1  # raises IndexError if the game read something never served
    assert len(set(log.values)) > frames // 2  # the game saw fresh pads, not a stale one
    assert all(v & padmod.RESERVED_BITS == 0 for v in log.values)


def test_lockstep_frames_advance_only_as_the_agent_steps(tmp_path, hooked_plugin_so):
    polls_per_step, steps = 2, 80
    pads = script(steps)
    mailbox = LatestPads()
    hold_at = 30
    held = threading.Event()
    release = threading.Event()

    def agent() -> None:
        for i in range(steps + 1):
            if mailbox.wait_wanted(0, i, 20) <= i:
                return
            if i == hold_at:
                held.set()
                release.wait(20)
            mailbox.publish(0, pads[i] if i < steps else Pad())

    threading.Thread(target=agent, daemon=True).start()
    cfg = ServerConfig(port=0, mode="lockstep", polls_per_step=polls_per_step, step_timeout=30)
    with PadServer(mailbox, cfg) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            steps * polls_per_step + 1,
            KARTBOT_MODE="lockstep",
            KARTBOT_TIMEOUT_MS="30000",
        )
        try:
            assert held.wait(20), emu.output()
            # Polls are traced when GetKeys returns; the one now waiting is not.
            before = emu.wait_polls(hold_at * polls_per_step, 10)
            # The agent holds its action for a second (~60 frames at full speed):
            # the emulator is alive but waits in GetKeys, frame counter frozen.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert emu.proc.poll() is None
                time.sleep(0.05)
            during = emu.polls()
            assert len(during) == len(before) == hold_at * polls_per_step
            assert during[-1][2] == hold_at * polls_per_step - 1  # the ROM's own counter
            release.set()
            log = emu.finish()
        finally:
            release.set()
            emu.kill()
    assert log.frames == steps * polls_per_step
    expected = [padmod.to_word(p) for p in pads for _ in range(polls_per_step)]
    assert log.values == expected  # frame by frame, exactly what the agent decided


def test_lockstep_scripted_exact_over_200_frames(tmp_path, hooked_plugin_so, served):
    cfg = ServerConfig(port=0, mode="lockstep")
    on_serve = lambda c, p: served.append(padmod.to_word(p)) if c == 0 else None  # noqa: E731
    with PadServer(ScriptedPads({0: script(1000)}), cfg, on_serve=on_serve) as srv:
        emu = Emulator(tmp_path, hooked_plugin_so, srv.address[1], 201, KARTBOT_MODE="lockstep")
        try:
            log = emu.finish()
        finally:
            emu.kill()
    assert log.frames == 200
    assert log.values == served[:200]


def test_killing_the_server_does_not_freeze_or_crash_the_emulator(tmp_path, hooked_plugin_so):
    session = synth.make_native(tmp_path / "rec", 60, width=64, height=48)
    recorded = {padmod.to_word(f.pad) for f in open_source(session).frames()}
    with PadServer(ScriptedPads({}), ServerConfig(port=0)) as probe:
        port = probe.address[1]

    def start_server() -> subprocess.Popen:
        cmd = [sys.executable, "-m", "kartplay.cli", "serve", "--replay", str(session)]
        cmd += ["--port", str(port), "--no-status"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None
        assert "kartplay serve" in p.stdout.readline()  # listening
        return p

    server = start_server()
    emu = Emulator(tmp_path, hooked_plugin_so, port, 600)
    try:
        emu.wait_polls(60, 20)
        server.kill()  # SIGKILL mid-run: no goodbye
        server.wait(10)
        killed_at = len(emu.wait_polls(1, 1))
        after = emu.wait_polls(killed_at + 120, 20)  # still running at its own pace
        assert {w for _, w, _ in after[killed_at + 30 :]} == {0}  # neutral pad
        server = start_server()  # and it recovers when the server comes back
        deadline = time.monotonic() + 20
        while not any(w in recorded for _, w, _ in emu.polls()[len(after) :]):
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.05)
        log = emu.finish()
    finally:
        emu.kill()
        server.kill()
        server.wait(10)
    assert log.frames == 599  # it ran to the end and stopped cleanly
    assert emu.output().count("not answering") == 1
    assert "is back" in emu.output()
