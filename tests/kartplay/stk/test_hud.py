"""The HUD race-timer reader on frames of the real game, checked against the
clock the game logs for every frame it renders."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kartdata.devices import ScreenCapture
from kartplay.stk.config import GameSettings
from kartplay.stk.game import SuperTuxKart, TimeTrial
from kartplay.stk.hud import FONTS, HudError, font_for, learn_font, timer_text
from kartplay.stk.racelog import frames_in

RACE_SECONDS = 11.0  # every units-of-seconds digit shows once


@pytest.fixture(scope="module")
def race_frames(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(frames with the latest logged clock when grabbed, every logged clock)."""
    log = tmp_path_factory.mktemp("hud") / "game.log"
    shots: list[tuple[np.ndarray, float]] = []
    race = TimeTrial("sandtrack", laps=1, settings=GameSettings(400, 300))
    with SuperTuxKart(race, log_file=log) as game:
        region = game.wait_window()
        game.wait_race()
        with ScreenCapture(game.display) as cap:
            deadline = time.monotonic() + 120
            while game.frame().time_s < RACE_SECONDS and time.monotonic() < deadline:
                shots.append((cap.grab(region), game.frame().time_s))
                game.wait_frames(1, timeout_s=30)
    with log.open("rb") as f:
        logged = np.array([r.time_s for r in frames_in(f)])
    return shots, logged


def test_every_read_clock_is_a_logged_frame_time(race_frames) -> None:  # type: ignore[no-untyped-def]
    shots, logged = race_frames
    font = font_for(400, 300)
    read = [font.read(img) for img, _ in shots]
    got = np.array([t for t in read if t is not None])
    assert len(got) >= 0.95 * len(shots)
    # The HUD shows the world clock to the millisecond.
    assert np.abs(got[:, None] - logged[None, :]).min(axis=1).max() <= 0.0006
    assert got.max() >= RACE_SECONDS - 1


def test_fonts_learnt_again_from_real_frames_match_the_shipped_one(race_frames) -> None:  # type: ignore[no-untyped-def]
    shots, _ = race_frames
    learnt = learn_font(shots)
    shipped = font_for(400, 300)
    assert (learnt.top, learnt.x0) == (shipped.top, shipped.x0)
    for c, g in shipped.glyphs.items():
        mine = learnt.glyphs[c]
        assert mine.advance == g.advance, c
        # The glyph's own pixels agree; a border pixel may differ with the sky.
        assert np.array_equal(mine.white, g.white), c


def test_no_timer_reads_none() -> None:
    font = font_for(400, 300)
    assert font.read(np.zeros((300, 400, 3), np.uint8)) is None
    assert font.read(np.full((300, 400, 3), 255, np.uint8)) is None


def test_wrong_sizes_are_one_line_errors() -> None:
    with pytest.raises(HudError, match=r"frame is 320x240, the timer font is for 400x300"):
        font_for(400, 300).read(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(HudError, match=r"no learnt HUD timer font for a 333x222 window"):
        font_for(333, 222)
    assert (400, 300) in FONTS


def test_timer_text_rounds_like_the_game() -> None:
    assert timer_text(83.12349) == "01:23.123"
    assert timer_text(0.0005) == "00:00.001"
    assert timer_text(59.9996) == "01:00.000"


def test_learning_needs_frames_with_the_timer(tmp_path: Path) -> None:
    with pytest.raises(HudError, match="no frame shows the race timer"):
        learn_font([(np.zeros((300, 400, 3), np.uint8), 1.0)])
