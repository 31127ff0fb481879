"""SuperTuxKart as a kartkit target: a time trial in a headless, private game.

:class:`SuperTuxKart` starts Xvfb (unless given a display), a private HOME with
the config kartkit writes (:mod:`kartplay.stk.config`), and the game straight
into a time trial (``--race-now --mode=1 --numkarts=1``) with its per-frame log
on (:mod:`kartplay.stk.racelog`). It waits, each wait bounded and failing with
one line that names what did not appear, for the window and then the race; it
reads the result (the finish time from the game's highscore file, else how far
the kart got), and it ends the game and Xvfb by their process ids on every
exit path::

    with SuperTuxKart(TimeTrial("lighthouse", laps=1)) as game:
        game.wait_race()           # the window is up and the race clock runs
        ...                        # drive it: kartplay drive-window, the recorder
        print(game.result())       # RaceResult(finished=False, time_s=…, distance_m=…)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kartdata.devices import Region, WindowRegion
from kartdata.devices.x11 import open_display
from kartdata.errors import KartError
from kartplay.stk.config import GameSettings, write_config
from kartplay.stk.display import HeadlessDisplay
from kartplay.stk.highscores import HIGHSCORE_FILE, Highscore, read_highscores
from kartplay.stk.install import GameInstall
from kartplay.stk.procs import end_process, start_process
from kartplay.stk.racelog import RaceFrame, RaceLog

#: The title of the game's window (what ``--window`` finds it by).
WINDOW_TITLE = "SuperTuxKart"
#: Bounds on the waits: loading takes ~8 s at 320x240 on two idle cores; the
#: bounds leave room for a busy machine, and a wait that runs out says so.
WINDOW_TIMEOUT_S = 60.0
RACE_TIMEOUT_S = 90.0


class GameError(KartError):
    """The game did not start, or stopped, as asked."""


@dataclass(frozen=True, slots=True)
class TimeTrial:
    """One kart alone on ``track`` for ``laps`` laps."""

    track: str = "lighthouse"
    laps: int = 1
    kart: str = "tux"
    #: 0 novice … 3 supertux (the game's ``--difficulty``).
    difficulty: int = 3
    settings: GameSettings = field(default_factory=GameSettings)

    def __post_init__(self) -> None:
        if self.laps < 1:
            raise GameError(f"laps {self.laps}: a time trial has at least one lap")
        if not 0 <= self.difficulty <= 3:
            raise GameError(f"difficulty {self.difficulty} is not 0..3")

    def argv(self) -> list[str]:
        return [
            "--race-now",
            f"--track={self.track}",
            "--mode=1",  # time trial
            "--numkarts=1",
            f"--laps={self.laps}",
            f"--kart={self.kart}",
            f"--difficulty={self.difficulty}",
            f"--screensize={self.settings.screensize}",
            "--windowed",
            "--fps-debug",  # the per-frame race log
            "--log=1",  # verbose: the level the frame lines are logged at
        ]


@dataclass(frozen=True, slots=True)
class RaceResult:
    """How the race went: finished with the game's own finish time, or not
    finished with the race clock and lap distance of the last frame."""

    finished: bool
    time_s: float
    #: Distance along the track in the lap the kart was on (0 when finished).
    distance_m: float
    frames: int


def game_env(home: Path, display: str, **extra: str) -> dict[str, str]:
    """The game's environment: a private HOME on ``display``; English, so the log
    and the HUD read the same on every machine; SDL's X11 video driver whatever
    a pad reader in this process chose for itself."""
    return {
        **os.environ,
        "HOME": str(home),
        "DISPLAY": display,
        "LANGUAGE": "en",
        "SDL_VIDEODRIVER": "x11",
        **extra,
    }


def launch_game(
    argv: list[str], env: dict[str, str], log_file: Path | None
) -> tuple[subprocess.Popen[bytes], RaceLog]:
    """Start the game (ended by :func:`end_process` on its pid) and read its
    output as it is logged."""
    if stdbuf := shutil.which("stdbuf"):  # line-buffered: each frame line arrives when logged
        argv = [stdbuf, "-oL", *argv]
    proc = start_process(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    return proc, RaceLog(proc.stdout, log_file)


class SuperTuxKart:
    """One game, one time trial (see the module docstring).

    ``display``: an X display to use (the caller owns it); None starts a
    private Xvfb exactly the size of the game's window, so the window sits at
    the screen's origin. ``home``: the private HOME (default: a temporary
    directory, deleted on close)."""

    def __init__(
        self,
        race: TimeTrial | None = None,
        *,
        display: str | None = None,
        home: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.race = race or TimeTrial()
        self.install = GameInstall.find()
        self.install.check(self.race.track, self.race.kart)
        self._own_display = display is None
        self._display: HeadlessDisplay | None = None
        self.display = display or ""
        self._own_home = home is None
        self.home = home
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: RaceLog | None = None
        self.started_s = 0.0

    # -- start and end -------------------------------------------------------

    def start(self) -> SuperTuxKart:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        s = self.race.settings
        if not self._own_display:
            open_display(self.display).close()  # a one-line DisplayError if it is not there
        if self._own_display:
            self._display = HeadlessDisplay(s.screensize).start()
            self.display = self._display.name
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="kartkit-stk-"))
        self.config_dir = write_config(self.home, s)
        self.started_s = time.monotonic()
        self.proc, self.log = launch_game(
            [str(self.install.binary), *self.race.argv()],
            game_env(self.home, self.display),
            self.log_file,
        )

    def close(self) -> None:
        """Ends the game, then Xvfb (if ours), by process id; removes our HOME."""
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None
        if self.log is not None:
            self.log.join()
        if self._display is not None:
            self._display.close()
            self._display = None
        if self._own_home and self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def __enter__(self) -> SuperTuxKart:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- waits ---------------------------------------------------------------

    def _running(self) -> RaceLog:
        if self.proc is None or self.log is None:
            raise GameError("the game is not running (start() it first)")
        return self.log

    def _gone(self, waiting_for: str) -> GameError:
        assert self.proc is not None and self.log is not None
        code = self.proc.poll()
        if code is None and self.log.ended:  # its output closed as it exits: the code follows
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=5)
        why = f"exited with code {code}" if code is not None else "stopped logging"
        tail = self.log.tail()
        return GameError(f"SuperTuxKart {why} before {waiting_for}" + (f": {tail}" if tail else ""))

    def wait_window(self, timeout_s: float = WINDOW_TIMEOUT_S) -> Region:
        """The game's window on the display, once it is mapped."""
        log = self._running()
        tracker = WindowRegion(WINDOW_TITLE, self.display)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                r = tracker.current()
                if r is not None:
                    return r
                if log.ended or (self.proc is not None and self.proc.poll() is not None):
                    raise self._gone(f"its window appeared on {self.display}")
                if time.monotonic() >= deadline:
                    raise GameError(
                        f"no {WINDOW_TITLE!r} window on {self.display} within {timeout_s:g} s"
                    )
                time.sleep(0.1)  # polling the X server, not synchronising
        finally:
            tracker.close()

    def wait_race(self, timeout_s: float = RACE_TIMEOUT_S) -> RaceFrame:
        """The first frame of the running race (race clock above 0); the window
        is up by then."""
        log = self._running()
        left = max(0.0, timeout_s - (time.monotonic() - self.started_s))
        frame = log.wait_for(lambda f: f is not None and f.time_s > 0, left)
        if frame is None:
            if log.ended or (self.proc is not None and self.proc.poll() is not None):
                raise self._gone(f"the race on {self.race.track} started")
            raise GameError(
                f"the race on {self.race.track} did not start within {timeout_s:g} s "
                f"of launching the game ({log.frames} frames logged)"
            )
        return frame

    def wait_frames(self, n: int, timeout_s: float = 30.0) -> RaceFrame:
        """The frame ``n`` frames after the latest one now (the game rendered
        and logged them)."""
        log = self._running()
        target = log.frames + n
        frame = log.wait_for(lambda f: log.frames >= target, timeout_s)
        if frame is None:
            raise GameError(f"SuperTuxKart logged no {n} new frames within {timeout_s:g} s")
        return frame

    def frame(self) -> RaceFrame:
        """The latest logged frame."""
        log = self._running()
        if log.latest is None:
            raise GameError("SuperTuxKart has logged no race frame yet")
        return log.latest

    # -- the result ----------------------------------------------------------

    def highscores(self) -> list[Highscore]:
        if self.home is None:
            return []
        return read_highscores(self.config_dir / HIGHSCORE_FILE)

    def finish(self) -> Highscore | None:
        """This race's entry in the game's highscore table, once it has finished."""
        r = self.race
        for h in self.highscores():
            if h.track == r.track and h.laps == r.laps and h.kart == r.kart:
                return h
        return None

    def wait_finished(self, timeout_s: float) -> RaceResult:
        """Waits for the finish (the highscore entry) at most ``timeout_s``."""
        self._running()
        deadline = time.monotonic() + timeout_s
        while self.finish() is None and time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._gone("the race finished")
            time.sleep(0.2)  # polling a file, not synchronising
        return self.result()

    def result(self) -> RaceResult:
        log = self._running()
        done = self.finish()
        if done is not None:
            return RaceResult(True, done.time_s, 0.0, log.frames)
        last = log.latest
        if last is None:
            return RaceResult(False, 0.0, 0.0, log.frames)
        return RaceResult(False, last.time_s, last.distance_m, log.frames)
