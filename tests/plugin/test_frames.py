"""Frames straight from the emulator: the test ROM draws a known pattern into its
frame buffer and shows it through the VI; the plugin publishes every frame into
its ring and kartplay.emuframes reads them back, in the real emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from exported_models import export_pilotnet
from real_emulator import Emulator, script
from xvfb import poll

from kartdata.sources import open_source
from kartplay import emuframes, testrom
from kartplay import pad as padmod
from kartplay.agent import AgentLoop, LatestPads, ScriptedPads
from kartplay.protocol import PadServer, ServerConfig

VIDEOS = [testrom.Video(bits=16), testrom.Video(bits=32)]


@pytest.fixture
def ring_path() -> Iterator[Path]:
    path = Path("/dev/shm") / f"kartkit-test-frames-{uuid.uuid4().hex}"
    yield path
    path.unlink(missing_ok=True)


def expected_rgb(frame: int, video: testrom.Video) -> np.ndarray:
    """The ROM's frame, decoded from the pattern by the formats' definitions
    (written out here independently of emuframes.to_rgb)."""
    words = np.array(testrom.pattern_words(frame, video), dtype=np.uint64)
    if video.bits == 32:  # RGBA8888, big-endian: R is the word's top byte
        r, g, b = (words >> 24) & 255, (words >> 16) & 255, (words >> 8) & 255
    else:  # two RGBA5551 pixels a word, the first in the top half
        px = np.stack([words >> 16, words & 0xFFFF], axis=1).reshape(-1)
        r5, g5, b5 = (px >> 11) & 31, (px >> 6) & 31, (px >> 1) & 31
        r, g, b = ((c << 3) | (c >> 2) for c in (r5, g5, b5))
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint8)
    return rgb.reshape(video.height, video.width, 3)


def frame_of(rgb_first_word: int) -> int:
    """The frame number the ROM drew, recovered from the pattern's first word."""
    return (rgb_first_word * pow(testrom.PATTERN_STEP, -1, 1 << 32)) & 0xFFFFFFFF


def first_word(f: emuframes.EmuFrame) -> int:
    return int(f.words[0])


class Reader:
    """Reads every frame of the ring in a thread while the emulator runs."""

    def __init__(self, path: Path, delay_s: float = 0.0, slots_wait_s: float = 20.0) -> None:
        self.path = path
        self.delay_s = delay_s
        self.frames: list[emuframes.EmuFrame] = []
        self.error: BaseException | None = None
        self.ring: emuframes.FrameRing | None = None
        self._wait = slots_wait_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.ring = emuframes.FrameRing(self.path, wait_s=self._wait)
            for f in self.ring.frames(2.0, with_pad=True):
                self.frames.append(f)
                if self.delay_s:
                    time.sleep(self.delay_s)  # the slow consumer under test
        except BaseException as e:
            self.error = e

    def join(self) -> emuframes.FrameRing:
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "reader did not finish"
        assert self.error is None, self.error
        assert self.ring is not None
        return self.ring


@pytest.mark.parametrize("video", VIDEOS, ids=["rgba5551", "rgba8888"])
def test_frames_equal_the_roms_pattern_with_its_frame_numbers_and_pads(
    tmp_path, hooked_plugin_so, ring_path, video
):
    frames = 120
    with PadServer(ScriptedPads({0: script(5000)}), ServerConfig(port=0)) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            frames + 1,
            video,
            KARTBOT_FRAMES=str(ring_path),
            KARTBOT_FRAMES_SLOTS="64",
        )
        try:
            reader = Reader(ring_path)
            log = emu.finish()
        finally:
            emu.kill()
        ring = reader.join()
    assert log.frames == frames
    got = reader.frames
    assert ring.lost == 0 and ring.published == frames + 1 and ring.skipped == 0
    # Every frame, in order, numbered as the ROM counted it (poll n shows the
    # frame the ROM drew with its counter at n; the last poll stopped the core).
    assert [f.frame for f in got] == list(range(frames + 1))
    assert [frame_of(first_word(f)) for f in got] == [f.frame for f in got]
    for f in got:
        assert (f.width, f.height, f.bits) == (video.width, video.height, video.bits)
        assert f.origin == testrom.FB_ADDR + (f.frame % 2) * testrom.FB_STRIDE
        np.testing.assert_array_equal(f.rgb, expected_rgb(f.frame, video), f"frame {f.frame}")
    # ... and the pad word the ROM logged for that frame.
    assert [f.pad_word for f in got[:frames]] == log.values
    assert len(set(log.values)) > frames // 2  # fresh pads, not one stale word
    # A reader that comes late gets what the ring still holds; older frames
    # predate it and are not counted as lost.
    with emuframes.FrameRing(ring_path) as late:
        rest = list(late.frames(0.5))
        assert [f.frame for f in rest] == list(range(frames + 1 - 64, frames + 1))
        assert late.lost == 0


def test_a_rom_that_shows_nothing_publishes_nothing(tmp_path, hooked_plugin_so, ring_path):
    with PadServer(ScriptedPads({}), ServerConfig(port=0)) as srv:
        emu = Emulator(
            tmp_path, hooked_plugin_so, srv.address[1], 31, None, KARTBOT_FRAMES=str(ring_path)
        )
        try:
            log = emu.finish()
        finally:
            emu.kill()
    assert log.frames == 30
    with emuframes.FrameRing(ring_path) as ring:
        assert ring.closed
        assert (ring.published, ring.skipped) == (0, 31)  # VI blank: counted, not shown
    assert "frames: 0 published, 31 polls without a frame to show" in emu.output()


def test_frames_are_off_unless_configured(tmp_path, hooked_plugin_so):
    with PadServer(ScriptedPads({}), ServerConfig(port=0)) as srv:
        emu = Emulator(tmp_path, hooked_plugin_so, srv.address[1], 11, VIDEOS[0])
        try:
            emu.finish()
        finally:
            emu.kill()
    assert "frames:" not in emu.output()


def test_slow_consumer_loses_frames_counted_while_the_rom_keeps_its_pace(
    tmp_path, hooked_plugin_so, ring_path
):
    frames, slots, delay_s = 180, 4, 0.05  # the reader takes 20 frames/s at most
    with PadServer(ScriptedPads({0: script(5000)}), ServerConfig(port=0)) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            frames + 1,
            VIDEOS[0],
            KARTBOT_FRAMES=str(ring_path),
            KARTBOT_FRAMES_SLOTS=str(slots),
        )
        try:
            reader = Reader(ring_path, delay_s=delay_s)
            log = emu.finish()
        finally:
            emu.kill()
        ring = reader.join()
    got = reader.frames
    assert log.frames == frames
    # Dropped, and counted: what the reader got plus what it lost is everything.
    assert ring.lost > 0
    assert len(got) + ring.lost == ring.published == frames + 1
    numbers = [f.frame for f in got]
    assert numbers == sorted(set(numbers))
    # What it got is still whole and paired right.
    for f in got:
        np.testing.assert_array_equal(f.rgb, expected_rgb(f.frame, VIDEOS[0]))
        if f.frame < frames:
            assert f.pad_word == log.values[f.frame]
    # The emulator kept its own pace (~60 frames/s, speed-limited), not the
    # reader's (at most 1 / delay_s = 20 frames/s).
    span_s = (got[-1].t_ns - got[0].t_ns) / 1e9
    emulated_fps = (got[-1].frame - got[0].frame) / span_s
    assert emulated_fps > 1.5 / delay_s, emulated_fps


def test_lockstep_agent_acts_on_exactly_the_frame_it_answers(tmp_path, hooked_plugin_so, ring_path):
    """The agent sees frame N (published before the plugin asks) and its action
    is what the game reads at poll N: the ROM's log shows the pad chosen for
    the frame number the agent decoded from the pixels."""
    steps = 90
    pads = script(steps + 1)
    feed = emuframes.EmulatorFrameFeed(ring_path, frame_timeout=5.0)
    seen: list[int] = []

    def decide():
        rgb = feed.grab()
        assert rgb is not None
        f = feed.last_frame
        assert f is not None
        n = frame_of(first_word(f))
        seen.append(n)
        return pads[n]

    mailbox = LatestPads()
    loop = AgentLoop(decide, lockstep=True, mailbox=mailbox)
    cfg = ServerConfig(port=0, mode="lockstep", step_timeout=10)
    with PadServer(mailbox, cfg) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            steps + 1,
            VIDEOS[0],
            KARTBOT_MODE="lockstep",
            KARTBOT_TIMEOUT_MS="20000",
            KARTBOT_FRAMES=str(ring_path),
        )
        try:
            assert feed.wait(20) == (VIDEOS[0].height, VIDEOS[0].width)
            loop.start()
            log = emu.finish()
        finally:
            loop.stop()
            emu.kill()
            feed.close()
    assert loop.error is None, loop.error
    assert log.frames == steps
    assert seen[:steps] == list(range(steps))  # one step per frame, none skipped
    assert list(feed.frames_used)[:steps] == list(range(steps))
    assert log.values == [padmod.to_word(pads[n]) for n in range(steps)]


def test_record_writes_each_frame_with_the_pad_the_rom_read(tmp_path, hooked_plugin_so, ring_path):
    frames, every = 150, 2
    out = tmp_path / "session"
    cfg = emuframes.EmuRecordConfig(
        out=str(out), ring=str(ring_path), every=every, game="padtest", wait_s=20
    )
    result: list[emuframes.EmuRecordResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(emuframes.record(cfg))
        except BaseException as e:
            errors.append(e)

    with PadServer(ScriptedPads({0: script(5000)}), ServerConfig(port=0)) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            frames + 1,
            VIDEOS[1],
            KARTBOT_FRAMES=str(ring_path),
            KARTBOT_FRAMES_SLOTS="64",
        )
        recorder = threading.Thread(target=run, daemon=True)
        recorder.start()
        try:
            log = emu.finish()
        finally:
            emu.kill()
        recorder.join(timeout=60)
    assert not recorder.is_alive() and not errors, errors
    res = result[0]
    kept = list(range(0, frames + 1, every))
    # A frame the ring lost (a machine too busy to drain it) is counted, and a
    # gap in the session; every frame written is whole and paired right.
    assert len(kept) - res.frames_lost <= res.frames_written <= len(kept)
    assert res.frames_written > len(kept) // 2 and res.first_frame == 0
    session = open_source(out)
    meta = json.loads((out / "session.json").read_text())
    assert meta["fps"] == 30.0 and meta["capture"] == {"width": 320, "height": 240}
    rows = list(session.frames())
    assert len(rows) == res.frames_written
    indices = [r.index for r in rows]
    assert indices == sorted(set(indices)) and set(indices) <= set(range(len(kept)))
    for r in rows:
        game_frame = r.index * every
        np.testing.assert_array_equal(r.image(), expected_rgb(game_frame, VIDEOS[1]))
        if game_frame < frames:
            assert padmod.to_word(r.pad) == log.values[game_frame], f"frame {game_frame}"
    # validate reads it like any other native session
    v = subprocess.run(
        [sys.executable, "-m", "kartdata.cli", "validate", "--no-store", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert v.returncode in (0, 1), v.stderr[-2000:]
    report = json.loads(v.stdout)
    (checked,) = report["sessions"]
    assert not checked["unusable"] and checked["frames"] == len(rows), checked["errors"]


def test_record_with_a_real_pad_the_game_and_the_session_see_the_same_word(
    tmp_path, hooked_plugin_so, ring_path
):
    """The human's pad (an SDL virtual joystick read through SDL's GameController
    layer, as hardware is) is served to the plugin, and each recorded frame
    carries the word the ROM read for it."""
    from kartdata.devices.gamepad import Gamepad
    from kartdata.devices.sdl_virtual import SdlVirtualPad

    frames = 150
    vp = SdlVirtualPad()
    cfg = emuframes.EmuRecordConfig(out=str(tmp_path / "session"), ring=str(ring_path), wait_s=20)
    ready: list[tuple[str, int]] = []
    result: list[emuframes.EmuRecordResult] = []
    errors: list[BaseException] = []
    moving = threading.Event()

    def run() -> None:
        try:
            result.append(
                emuframes.record_with_pad(
                    cfg, Gamepad(vp.index), ServerConfig(port=0), on_ready=ready.append
                )
            )
        except BaseException as e:
            errors.append(e)

    def steer() -> None:  # the human sweeps the stick while the game runs
        k = 0
        while not moving.wait(0.03):
            vp.set_axis(0, ((k * 37) % 200 - 100) / 100)
            vp.set_button(0, k % 3 == 0)
            k += 1

    recorder = threading.Thread(target=run, daemon=True)
    human = threading.Thread(target=steer, daemon=True)
    recorder.start()
    human.start()
    try:
        assert poll(lambda: bool(ready or errors), 20) and not errors, errors
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            ready[0][1],
            frames + 1,
            VIDEOS[0],
            KARTBOT_FRAMES=str(ring_path),
            KARTBOT_FRAMES_SLOTS="64",
        )
        try:
            log = emu.finish()
        finally:
            emu.kill()
        recorder.join(timeout=60)
    finally:
        moving.set()
        human.join(timeout=5)
        vp.close()
    assert not recorder.is_alive() and not errors, errors
    res = result[0]
    assert res.frames_written + res.frames_lost == frames + 1  # lost ones counted
    assert res.frames_written > frames // 2
    rows = list(open_source(tmp_path / "session").frames())
    assert len(rows) == res.frames_written
    # The session's pad is the game's, frame by frame (index = game frame).
    assert [padmod.to_word(r.pad) for r in rows if r.index < frames] == [
        log.values[r.index] for r in rows if r.index < frames
    ]
    assert len(set(log.values)) >= 5  # and it was the human's moving stick
    for r in rows[::25]:
        np.testing.assert_array_equal(r.image(), expected_rgb(r.index, VIDEOS[0]))


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PilotNet (66x200, outputs x, a, b) with random seeded weights, exported by
    the real kartmodel.artifact; its output layer scaled up so that the pad
    depends on the frame."""
    return export_pilotnet(tmp_path_factory.mktemp("emu-serve") / "run", seed=5)


def test_serve_frames_emulator_lockstep_acts_on_each_frame_exactly(
    tmp_path, hooked_plugin_so, ring_path, tiny_artifact
):
    """`kartplay serve MODEL --frames emulator --mode lockstep`, built by the same
    Serving the CLI runs: the game reads, at poll N, the policy's pad for frame N
    (the plugin's trace gives the word each poll returned and the ROM's counter)."""
    from kartmodel.artifact import load_artifact
    from kartplay.policy import Policy, PolicyConfig
    from kartplay.serve import ServeOptions, Serving

    steps = 90
    with PadServer(ScriptedPads({}), ServerConfig(port=0)) as probe:
        port = probe.address[1]  # a free port for the plugin to find the server at
    opts = ServeOptions(
        model=str(tiny_artifact),
        frames="emulator",
        frames_ring=str(ring_path),
        window_wait=30,
        server=ServerConfig(port=port, mode="lockstep", step_timeout=20),
        policy=PolicyConfig(button_threshold=0.3),
        status=False,
    )
    # Serve sizes the policy on the emulator's first frame, so the emulator
    # starts first; until the server listens the plugin serves the neutral pad.
    emu = Emulator(
        tmp_path,
        hooked_plugin_so,
        port,
        10**9,  # no stop: this test ends the emulator itself
        VIDEOS[0],
        KARTBOT_MODE="lockstep",
        KARTBOT_TIMEOUT_MS="20000",
        KARTBOT_FRAMES=str(ring_path),
    )
    serving: list[Serving] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            serving.append(Serving(opts).start())
        except BaseException as e:
            errors.append(e)

    builder = threading.Thread(target=start, daemon=True)
    builder.start()
    try:
        assert poll(lambda: bool(serving or errors), 120) and not errors, errors
        s = serving[0]
        assert s.feed is not None
        assert poll(lambda: len(s.feed.frames_used) > steps, 60), len(s.feed.frames_used)
        s.check()
        status = s.status_line()
        used = list(s.feed.frames_used)[:steps]
        traced = {n - 1: (word, counter) for n, word, counter in emu.polls()}
    finally:
        emu.kill()
        builder.join(timeout=120)
        for srv in serving:
            srv.close()
    # One step per frame, none skipped, from the one where the server came up.
    first = used[0]
    assert used == list(range(first, first + steps))
    policy = Policy(load_artifact(tiny_artifact), PolicyConfig(button_threshold=0.3))
    want = [padmod.to_word(policy.act(expected_rgb(n, VIDEOS[0]))) for n in used]
    assert [traced[n][1] for n in used] == used  # poll N: the ROM had drawn frame N
    assert [traced[n][0] for n in used] == want  # ... and read the pad for frame N
    assert len(set(want)) > 1  # the pads depend on the frame, so exactness means something
    assert re.search(r"frame age p50 \d+\.\d ms", status), status


def test_record_ends_cleanly_when_the_emulator_is_killed(tmp_path, hooked_plugin_so, ring_path):
    """SIGKILL leaves the ring marked open: the recorder sees its writer gone,
    writes what it has and closes the session instead of waiting forever."""
    cfg = emuframes.EmuRecordConfig(out=str(tmp_path / "session"), ring=str(ring_path), wait_s=20)
    result: list[emuframes.EmuRecordResult] = []
    errors: list[BaseException] = []
    seen: list[int] = []

    def run() -> None:
        try:
            result.append(emuframes.record(cfg, on_frame=lambda f: seen.append(f.frame)))
        except BaseException as e:
            errors.append(e)

    with PadServer(ScriptedPads({0: script(5000)}), ServerConfig(port=0)) as srv:
        emu = Emulator(
            tmp_path,
            hooked_plugin_so,
            srv.address[1],
            10**9,
            VIDEOS[0],
            KARTBOT_FRAMES=str(ring_path),
        )
        recorder = threading.Thread(target=run, daemon=True)
        recorder.start()
        try:
            assert poll(lambda: len(seen) >= 30 or bool(errors), 30), errors
        finally:
            emu.kill()  # SIGKILL: RomClosed never runs
        recorder.join(timeout=30)
    assert not recorder.is_alive(), "the recorder waits for a dead emulator"
    assert not errors, errors
    res = result[0]
    rows = list(open_source(tmp_path / "session").frames())
    assert len(rows) == res.frames_written >= 30
    for r in rows[::10]:
        np.testing.assert_array_equal(r.image(), expected_rgb(r.index, VIDEOS[0]))
