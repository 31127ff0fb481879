"""kartkit's virtual keyboard and the drive-window loop drive the real game.

The game is SuperTuxKart in a time trial under a private Xvfb at 320x240
(kartplay.stk.game). That the game reacted is read two ways that do not
depend on each other: the game's own per-frame log (race clock, distance
along the track) and the pixels (the view changed; the scenery slid the way a
turn explains, tests/kartplay/stk/stk_view.py). CI installs the game
(scripts/setup.sh), so a missing game fails rather than skips.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from stk_view import total_shift

from kartdata.devices import ScreenCapture
from kartdata.devices.virtual_keyboard import VirtualKeyboard
from kartplay.stk.game import SuperTuxKart, TimeTrial
from kartplay.stk.keys import STK_KEYMAP

#: Pixels of scenery movement that count as a turn: a second of full steering
#: moved it 190-320 px in trials, driving straight 10 px or less.
TURNED_PX = 40


@pytest.fixture
def game() -> Iterator[SuperTuxKart]:
    with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as g:
        g.wait_race()
        yield g


def _frames_while(game: SuperTuxKart, cap: ScreenCapture, game_frames: int) -> list[np.ndarray]:
    """A capture after each new frame the game logs, ``game_frames`` of them."""
    region = game.wait_window()
    out = [cap.grab(region)]
    for _ in range(game_frames):
        game.wait_frames(1)
        out.append(cap.grab(region))
    return out


def test_the_virtual_keyboard_accelerates_and_steers_the_real_game(game: SuperTuxKart) -> None:
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

        # Left for a second of game frames: the scenery slides right.
        keys.press("Left")
        left = total_shift(_frames_while(game, cap, 25))
        keys.release("Left")
        assert left > TURNED_PX, left
        # Right, long enough to undo the left turn's swing and turn the
        # other way: over its second half the scenery slides left.
        keys.press("Right")
        _frames_while(game, cap, 25)
        right = total_shift(_frames_while(game, cap, 25))
        keys.release("Right")
        assert right < -TURNED_PX, right
        assert game.frame().distance_m > moving.distance_m
