"""The SuperTuxKart launcher on the real game: a time trial starts headless in a
private HOME, its race log is read live, and the game and Xvfb end by pid on
every exit path, a ``kill -9`` of Python included.

CI installs the game (scripts/setup.sh), so a missing game fails here rather
than skipping. One game serves the module's read-only tests (loading takes
~10 s on two cores at 320x240).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from xvfb import poll

from kartdata.devices import DisplayError, ScreenCapture
from kartplay.stk.config import CONFIG_DIR, GameConfigError
from kartplay.stk.display import HeadlessDisplay
from kartplay.stk.game import GameError, SuperTuxKart, TimeTrial
from kartplay.stk.highscores import HIGHSCORE_FILE, Highscore, HighscoreError, read_highscores
from kartplay.stk.install import GameNotInstalledError, UnknownTrackError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until its parent reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def game() -> Iterator[SuperTuxKart]:
    # SDL's dummy video driver in this process's environment (as a windowless
    # pad reader may leave it) must not reach the game: it would find no display.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDL_VIDEODRIVER", "dummy")
        with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as g:
            g.wait_race()
            yield g


def test_the_race_runs_in_a_window_of_the_chosen_size(game: SuperTuxKart) -> None:
    region = game.wait_window()
    assert (region.width, region.height) == (320, 240)
    first = game.frame()
    later = game.wait_frames(10)
    assert later.time_s > first.time_s > 0  # the race clock runs
    # Nothing pressed: the kart stands at the start.
    assert later.distance_m == 0.0
    result = game.result()
    assert not result.finished
    assert result.time_s >= later.time_s and result.frames >= 10


def test_the_window_shows_the_race_not_a_blank_screen(game: SuperTuxKart) -> None:
    with ScreenCapture(game.display) as cap:
        image = cap.grab(game.wait_window())
    assert image.shape == (240, 320, 3)
    # A rendered 3D scene: many distinct colours, no flat fill.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
    assert image.std() > 20


def test_the_game_runs_with_the_config_kartkit_wrote(game: SuperTuxKart) -> None:
    assert game.home is not None
    config = (game.home / CONFIG_DIR / "config.xml").read_text()
    assert 'enable_texture_compression="false"' in config
    # With compression on, loading writes compressed copies of the textures
    # here (and takes minutes); with it off the game writes none.
    cache = game.home / ".cache/supertuxkart/cached-textures"
    assert cache.is_dir()  # the game made it: this is the HOME it runs in
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_close_ends_the_game_and_xvfb_by_pid() -> None:
    g = SuperTuxKart(TimeTrial("zengarden", laps=1)).start()
    try:
        g.wait_window()
        assert g.proc is not None and g._display is not None and g._display.proc is not None
        pids = [g.proc.pid, g._display.proc.pid]
        home = g.home
        assert all(_alive(p) for p in pids)
    finally:
        g.close()
    assert not any(_alive(p) for p in pids)
    assert home is not None and not home.exists()


def test_a_kill_9_of_python_takes_the_game_and_xvfb_with_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from kartplay.stk.game import SuperTuxKart, TimeTrial
        g = SuperTuxKart(TimeTrial("lighthouse")).start()
        g.wait_window()
        print(g.proc.pid, g._display.proc.pid, flush=True)
        sys.stdin.read()  # until killed
        """
    )
    py = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
    )
    try:
        assert py.stdout is not None
        line = py.stdout.readline()  # bounded: the script's wait_window is
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids), line
    finally:
        py.send_signal(signal.SIGKILL)
        py.wait(timeout=10)
    assert poll(lambda: not any(_alive(p) for p in pids), timeout_s=10)


def test_no_game_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERTUXKART", "/nonexistent/supertuxkart")
    with pytest.raises(GameNotInstalledError, match="SuperTuxKart is not installed") as e:
        SuperTuxKart(TimeTrial())
    assert "\n" not in str(e.value)


def test_an_unknown_track_or_kart_is_one_line_before_anything_starts() -> None:
    with pytest.raises(UnknownTrackError, match=r"'nowhere' is not a race track.*lighthouse"):
        SuperTuxKart(TimeTrial("nowhere"))
    with pytest.raises(UnknownTrackError, match="'soccer_field' is not a race track"):
        SuperTuxKart(TimeTrial("soccer_field"))
    with pytest.raises(UnknownTrackError, match=r"kart 'nobody'.*tux"):
        SuperTuxKart(TimeTrial(kart="nobody"))


def test_a_display_that_is_not_there_is_one_line_and_no_hang() -> None:
    t0 = time.monotonic()
    with pytest.raises(DisplayError, match="cannot open X display ':987'"):
        SuperTuxKart(TimeTrial(), display=":987").start()
    assert time.monotonic() - t0 < 10


def test_a_game_that_dies_before_its_window_says_so_in_one_line() -> None:
    # The X server goes away under the loading game: it quits, and the wait
    # reports that with the game's own last words instead of waiting out its bound.
    display = HeadlessDisplay("320x240").start()
    g = SuperTuxKart(TimeTrial(), display=display.name).start()
    try:
        display.close()
        t0 = time.monotonic()
        with pytest.raises(GameError, match=r"SuperTuxKart exited with code .* before") as e:
            g.wait_race()
        assert "\n" not in str(e.value)
        assert time.monotonic() - t0 < 20
    finally:
        g.close()
        display.close()


def test_a_home_that_cannot_hold_the_config_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    with pytest.raises(GameConfigError, match="cannot write the game's config"):
        SuperTuxKart(TimeTrial(), home=home).start()


def test_bad_race_settings_are_one_line() -> None:
    with pytest.raises(GameError, match="at least one lap"):
        TimeTrial(laps=0)
    with pytest.raises(GameError, match="difficulty 7"):
        TimeTrial(difficulty=7)


# A highscore.xml the game wrote at the finish of a real race: lighthouse, one
# lap, tux, accelerate held and rescue pressed whenever the kart got stuck
# (docs/stk.md, "Measured"); its race log showed the lap distance wrap to 0 at
# race time 170.6 s, just after the 170.125 s the game recorded.
FINISHED = Path(__file__).with_name("data") / "highscore-lighthouse-1lap.xml"


def test_the_highscore_file_the_game_wrote_reads_as_that_race() -> None:
    (h,) = read_highscores(FINISHED)
    assert h == Highscore(
        track="lighthouse",
        mode="HST_STD_TIMETRIAL",
        laps=1,
        karts=1,
        difficulty=3,
        kart="tux",
        player="Player",
        time_s=170.125,
    )


def test_result_is_the_finish_once_the_game_has_written_it(game: SuperTuxKart) -> None:
    # Runs last in the module: the table is the game's own (it rewrites it
    # only at a finish, which this race never reaches).
    table = game.config_dir / HIGHSCORE_FILE
    assert not game.result().finished
    other = FINISHED.read_text().replace('kartname="tux"', 'kartname="gnu"')
    table.write_text(other)
    assert not game.result().finished  # another kart's time is not this race's
    shutil.copy(FINISHED, table)
    result = game.result()
    assert result.finished and result.time_s == 170.125 and result.distance_m == 0.0
    assert game.wait_finished(timeout_s=5).finished


def test_a_broken_highscore_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / HIGHSCORE_FILE
    bad.write_text(FINISHED.read_text()[:200])
    with pytest.raises(HighscoreError, match=r"highscore\.xml:\d+: not valid XML") as e:
        read_highscores(bad)
    assert "\n" not in str(e.value)
    assert read_highscores(tmp_path / "absent.xml") == []
