"""kartkit's virtual keyboard and the drive-window loop drive the real game.

The game is SuperTuxKart in a time trial under a private Xvfb at 320x240
(kartplay.stk.game). That the game reacted is read two ways that do not
depend on each other: the game's own per-frame log (race clock, distance
along the track) and the pixels (the view changed; the scenery slid the way a
turn explains, tests/kartplay/stk/stk_view.py). CI installs the game
(scripts/setup.sh), so a missing game fails rather than skips.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from exported_models import export_pilotnet
from stk_view import total_shift
from xvfb import poll

from kartdata.devices import ScreenCapture
from kartdata.devices.virtual_keyboard import VirtualKeyboard
from kartplay.stk.game import WINDOW_TITLE, SuperTuxKart, TimeTrial
from kartplay.stk.keys import STK_KEYMAP, write_keymap

#: Pixels of scenery movement that count as a turn: a second of full steering
#: moved it 190-320 px in trials, driving straight 10 px or less.
TURNED_PX = 40


@pytest.fixture
def game() -> Iterator[SuperTuxKart]:
    with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as g:
        g.wait_race()
        yield g


def _frames_while(game: SuperTuxKart, cap: ScreenCapture, race_s: float) -> list[np.ndarray]:
    """A capture after each new frame the game logs, until its race clock has
    run ``race_s`` further (the clock the physics runs on: when frames are
    slow the game slows it, so wall-clock seconds would mean less turning)."""
    region = game.wait_window()
    end = game.frame().time_s + race_s
    out = [cap.grab(region)]
    while game.wait_frames(1).time_s < end:
        out.append(cap.grab(region))
    out.append(cap.grab(region))
    return out


def test_the_virtual_keyboard_accelerates_and_steers_the_real_game_left(game: SuperTuxKart) -> None:
    with ScreenCapture(game.display) as cap, VirtualKeyboard(game.display, STK_KEYMAP) as keys:
        standing = game.wait_frames(5)
        assert standing.distance_m == 0.0  # nothing pressed yet: the kart waits at the start
        before = cap.grab(game.wait_window())

        keys.press("Up")  # STK_KEYMAP's A: accelerate
        moving = game.log.wait_for(lambda f: f is not None and f.distance_m > 15.0, 30)
        assert moving is not None, f"the kart did not move 15 m: {game.frame()}"
        assert moving.time_s > standing.time_s  # the race clock ran too
        after = cap.grab(game.wait_window())
        # The view changed where the road is (the HUD alone would not do it).
        road = slice(int(0.45 * 240), int(0.8 * 240))
        assert np.abs(after[road].astype(int) - before[road]).mean() > 10

        # Left for a second of race time: the scenery slides right. (The
        # other way round is the drive-window test's model, in a race of its
        # own: after a turn the chase camera keeps swinging for a second or
        # two, and on lighthouse a hard left ends at a fence.)
        keys.press("Left")
        left = total_shift(_frames_while(game, cap, 1.0))
        keys.release("Left")
        assert left > TURNED_PX, left
        assert game.frame().distance_m > moving.distance_m


# -- kartplay drive-window on the real game -------------------------------------


@pytest.fixture(scope="module")
def right_and_gas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported PilotNet (outputs x,a,b) whose answer is fixed by its
    output layer: zero weights, biases giving x = +0.99 (full right), a = 0.99
    (gas), b = -0.99 (no brake). What it sees still goes through the whole
    path: capture, the shared preprocessing, the model, the policy, the keys."""
    return export_pilotnet(
        tmp_path_factory.mktemp("drive") / "run", seed=5, bias=(100.0, 100.0, -100.0)
    )


def _down(display: str, names: list[str]) -> set[str]:
    """Which of ``names`` the X server has down now (its own key state)."""
    from kartdata.devices.keyboard import held_keycodes, resolve
    from kartdata.devices.x11 import open_display

    d = open_display(display)
    try:
        held = held_keycodes(d)
        return {n for n in names if resolve(d, n) in held}
    finally:
        d.close()


def test_drive_window_plays_the_model_on_the_real_game_and_a_kill_releases_the_keys(
    right_and_gas: Path, tmp_path: Path
) -> None:
    keymap = write_keymap(tmp_path / "stk-keys.json")
    with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as game:
        # Started while the game loads: TensorFlow and the model load meanwhile.
        drive = subprocess.Popen(
            [sys.executable, "-m", "kartplay.cli", "drive-window", str(right_and_gas),
             "--window", WINDOW_TITLE, "--keymap", str(keymap), "--display", game.display,
             "--window-wait", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            game.wait_race()
            # Once the model runs, gas and full right are held.
            held = poll(lambda: _down(game.display, ["Up", "Right"]) == {"Up", "Right"}, 90)
            assert held, (
                drive.poll(),
                drive.stderr.read1(4000) if drive.poll() is not None else "",
            )  # type: ignore[union-attr]
            assert _down(game.display, ["Left", "Down"]) == set()
            moving = game.log.wait_for(lambda f: f is not None and f.distance_m > 5.0, 30)
            assert moving is not None, f"the kart did not move: {game.frame()}"
            with ScreenCapture(game.display) as cap:
                turned = total_shift(_frames_while(game, cap, 1.0))
            assert turned < -TURNED_PX, turned  # a right turn: the scenery slides left
            assert drive.poll() is None
        finally:
            drive.send_signal(signal.SIGKILL)
            drive.wait(timeout=10)
        # Killed outright, no finally of its own ran: its key guard lets go of the keys.
        assert poll(lambda: _down(game.display, STK_NAMES) == set(), 10), _down(
            game.display, STK_NAMES
        )


STK_NAMES = sorted(STK_KEYMAP.key_names())


def test_a_kart_standing_still_is_rescued_by_the_drive_loop(tmp_path: Path) -> None:
    """A model that holds nothing: the kart stands at the start, the view stays
    still, and the drive loop presses the game's rescue (BackSpace through the
    key map). The game answers: its rescue lifts the kart, which moves the view
    more in one frame than anything else does while the kart stands, and puts it
    on the driveline: the race log's distance changes without the gas."""
    from kartplay.policy import load
    from kartplay.rescue import RescueConfig, thumbnail
    from kartplay.stk.keys import RESCUE_BUTTON
    from kartplay.window import DriveWindowConfig, WindowDriver

    still = export_pilotnet(tmp_path / "run", seed=6, bias=(0.0, -100.0, -100.0))
    keymap = write_keymap(tmp_path / "stk-keys.json")
    with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as game:
        game.wait_race()
        config = DriveWindowConfig(
            model=str(still), window=WINDOW_TITLE, keymap=keymap, display=game.display,
            rescue=RescueConfig(RESCUE_BUTTON, still_s=0.5, cooldown_s=1.0),
            window_wait_s=60,
        )  # fmt: skip
        stop = threading.Event()
        stats: list[object] = []
        with WindowDriver(config, policy=load(still)) as driver:
            loop = threading.Thread(target=lambda: stats.append(driver.run(stop)), daemon=True)
            loop.start()
            try:
                pressed = poll(lambda: _down(game.display, ["BackSpace"]) == {"BackSpace"}, 60)
                assert pressed, "the drive loop never pressed rescue"
                with ScreenCapture(game.display) as cap:
                    views = _frames_while(game, cap, 2.0)
            finally:
                stop.set()
                loop.join(30)
        assert not loop.is_alive()
        jumps = [
            float(np.abs(thumbnail(b) - thumbnail(a)).mean()) for a, b in itertools.pairwise(views)
        ]
        assert max(jumps) > 8.0, jumps  # the rescue's lift; a standing kart's view moves by < 4
        assert stats and stats[0].rescues >= 1  # type: ignore[attr-defined]
        # The game put the kart back on its driveline: the race log's distance,
        # 0 at the start line, is now that of the point the game chose (on
        # lighthouse just behind the line, near the end of the lap); no gas was held.
        assert game.frame().distance_m != 0.0
        assert _down(game.display, STK_NAMES) == set()
