"""Demonstration sessions from SuperTuxKart's ghost replays.

The game plays a replay from the chase camera ("watch replay only") while
kartkit records its window; each recorded frame is labelled with the expert's
controls at *that frame's* game time, read from the HUD race timer on the
frame itself (:mod:`kartplay.stk.hud`), never from the wall clock. The ghost
is drawn at the replay sample in effect at the world time
(``GhostController::update``: the last sample at or before it), and the timer
shows the same world time, so the label is the sample the frame shows.

What each pad field is (:func:`pad_at`):

- ``x``: the replay's ``steer`` (``Kart::getSteerPercent``, -1 full left …
  +1 full right), the value the recorded kart steered with; exact.
- ``r`` (drift, SuperTuxKart's skid key): held while ``skid_state`` is
  accumulating a skid (left or right); exact.
- ``l`` (nitro): held while the nitro flame shows (``nitro_usage`` > 0);
  exact up to the game's flame delay.
- ``a`` / ``b`` (accelerate / brake): **derived**, the replay does not store
  pedals. From the speed change between the sample in effect and the next:
  ``b`` when the kart loses more than :data:`BRAKE_DECEL` m/s², ``a`` when it
  is not losing more than :data:`COAST_DECEL` m/s² (holding the throttle);
  neither in between (coasting).
- ``z`` (use the item): not labelled (a time trial has no items to use).

Frames whose time cannot be read (menus, loading, the track intro, Ready /
Set, the result screen) are recorded with the neutral pad and the per-frame
tags :data:`UNTIMED_TAG` and ``schema.UNLABELLED_TAG``, so that sharding leaves
them out (counted as ``unlabelled``); ``labels.csv`` beside ``controls.csv`` holds each
frame's game time and the replay line its label came from.

Starting a watched replay has no command-line option in SuperTuxKart 1.4
(``--race-now`` only starts races with a player kart), so kartkit walks the
menus: it gives the game a data directory whose ``replay/`` holds only the
chosen replay (``$SUPERTUXKART_DATADIR``, every other entry linked to the
installed data) and a config whose race setup already has the replay's
difficulty and the "ghost replay" game mode, so the walk is the same few keys
for every replay: Singleplayer → the default kart → Race Setup → the one
replay → "Watch replay only" → Start Race. Each step waits, bounded, until the
screen it expects is up (coarse fingerprints of the 400x300 menus).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from kartdata.devices import Region, ScreenCapture, WindowRegion
from kartdata.errors import KartError
from kartdata.schema import UNLABELLED_TAG, Pad, SessionMeta
from kartdata.sources.native import SessionWriter
from kartplay.stk.config import GameSettings, config_xml, write_config
from kartplay.stk.display import HeadlessDisplay
from kartplay.stk.game import game_env, launch_game
from kartplay.stk.hud import TimerFont, font_for
from kartplay.stk.install import GameInstall
from kartplay.stk.procs import end_process
from kartplay.stk.racelog import RaceLog
from kartplay.stk.replay import (
    DIFFICULTIES,
    SHIPPED_REPLAY_DIR,
    Replay,
    read_replay,
    shipped_replays,
)

#: The window size demonstrations are recorded at: the menus' fingerprints and
#: the HUD timer's glyphs are learnt at this size.
DEMO_SETTINGS = GameSettings(width=400, height=300)
#: Session and frame tags (the loader selects demonstrations by the first).
SESSION_TAG = "stk-replay"
UNTIMED_TAG = "no-game-time"
LABELS_FILE = "labels.csv"
#: The game's own output, kept in the session (its per-frame clock and ghost distance).
GAME_LOG_FILE = "game.log"
#: Derived pedals (see the module docstring), in m/s².
BRAKE_DECEL = 8.0
COAST_DECEL = 1.5
#: Bounds on the waits (a busy two-core machine loads a track in 10–60 s).
MENU_STEP_S = 90.0
RACE_START_S = 120.0
#: Wall seconds without a readable clock, once the race ran, that end a recording.
CLOCK_GONE_S = 20.0


class DemonstrationError(KartError):
    """The game did not play the replay as asked."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """One demonstration: ``replay`` played by the game, recorded to ``out``."""

    replay: Path
    out: Path
    #: Game seconds of the race to record (None: until the replay ends).
    seconds: float | None = None
    #: Frames captured per wall-clock second at most (the game needs the CPU too).
    capture_fps: float = 10.0
    #: Wall-clock bound on the whole recording, menus and loading included.
    wall_limit_s: float = 1800.0
    settings: GameSettings = field(default_factory=lambda: DEMO_SETTINGS)
    #: Frame images: PNG (lossless, ~145 KB a frame at 400x300) or JPEG (quality 95, ~41 KB).
    image_format: Literal["png", "jpg"] = "png"

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise DemonstrationError(f"seconds {self.seconds} is not positive")
        if self.capture_fps <= 0:
            raise DemonstrationError(f"capture_fps {self.capture_fps} is not positive")
        if (self.settings.width, self.settings.height) != (
            DEMO_SETTINGS.width,
            DEMO_SETTINGS.height,
        ):
            raise DemonstrationError(
                f"demonstrations are recorded at {DEMO_SETTINGS.screensize} "
                f"(the menus and HUD timer are learnt there), not {self.settings.screensize}"
            )


@dataclass(frozen=True, slots=True)
class DemoResult:
    session: Path
    frames: int
    #: Frames whose game time was read from the HUD timer.
    timed: int
    #: Frames between the first and the last timed frame (the race on screen).
    racing: int
    #: Game time of the first and last timed frame.
    first_time_s: float
    last_time_s: float

    @property
    def timed_share(self) -> float:
        """Share of the racing frames that carry a game time."""
        return self.timed / self.racing if self.racing else 0.0


# -- labels ---------------------------------------------------------------------


def pad_at(replay: Replay, t: float) -> tuple[Pad, int]:
    """The expert's pad at game time ``t`` and the replay line it comes from."""
    s = replay.samples
    times = s["time"].to_numpy()
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(s) - 1))
    row = s.iloc[i]
    j = min(i + 1, len(s) - 1)
    dt = float(times[j] - times[i])
    accel = (float(s["speed"].iloc[j]) - float(row["speed"])) / dt if dt > 0 else 0.0
    buttons = set()
    if accel < -BRAKE_DECEL:
        buttons.add("b")
    elif accel > -COAST_DECEL:
        buttons.add("a")
    if int(row["skid_state"]) in (1, 2):  # accumulating a skid, left or right
        buttons.add("r")
    if int(row["nitro_usage"]) > 0:
        buttons.add("l")
    steer = float(np.clip(row["steer"], -1.0, 1.0))
    return Pad(x=steer, buttons=frozenset(buttons)), int(row["line"])


# -- the game, watching a replay --------------------------------------------------

#: 8x6 grey means of the menu screens at 400x300 (SuperTuxKart 1.4, English).
_SCREENS: dict[str, str] = {
    "main menu": "113 83 74 95 101 141 143 95 57 72 103 127 142 138 113 72 96 101 141 149 114 143 77 86 98 124 131 114 130 159 139 173 89 78 75 94 119 99 71 85 136 171 174 163 185 179 143 141",
    "kart selection": "115 83 74 120 93 102 107 53 57 70 95 135 118 141 135 95 96 118 131 186 110 128 113 105 94 122 137 93 110 214 126 169 135 143 156 160 158 168 107 136 145 175 190 176 184 181 139 172",
    "race setup": "116 84 74 119 94 102 107 53 135 166 176 186 174 192 186 150 144 172 185 194 168 192 161 150 118 155 154 124 140 205 155 177 166 179 190 196 195 195 182 164 136 188 187 184 181 189 182 186",
    "ghost replay list": "150 116 116 113 105 107 114 86 165 193 211 205 195 201 197 174 175 204 219 225 201 215 199 177 161 190 183 179 162 192 167 172 99 80 80 121 134 137 74 80 75 123 140 134 149 163 115 150",
    "replay dialog": "54 55 53 54 51 52 54 41 172 207 204 203 196 205 207 178 164 195 198 203 205 204 210 176 91 97 92 192 198 203 199 167 78 94 90 173 177 177 174 143 42 58 64 64 62 66 60 62",
}
#: Mean grey difference under which a screen is the one fingerprinted (the
#: screens differ by 21 or more; the replay dialog's track picture moves it ~5).
_SCREEN_MATCH = 10.0
#: The replay dialog at 400x300: the "Record the race" checkbox (hidden once
#: "Watch replay only" is ticked), the "Watch replay only" box, Start Race.
_RECORD_BOX = (slice(134, 148), slice(156, 174))
_WATCH_BOX_XY = (165, 166)
_START_XY = (180, 215)


def fingerprint(image: np.ndarray) -> np.ndarray:
    """8x6 grey block means of a 400x300 RGB frame (as :data:`_SCREENS` holds)."""
    grey = image[..., :3].astype(np.float64).mean(axis=2)
    h, w = grey.shape
    return grey[: h // 6 * 6, : w // 8 * 8].reshape(6, h // 6, 8, w // 8).mean(axis=(1, 3)).ravel()


def screen_name(image: np.ndarray) -> str | None:
    fp = fingerprint(image)
    best, dist = None, _SCREEN_MATCH
    for name, ref in _SCREENS.items():
        d = float(np.abs(fp - np.array(ref.split(), dtype=np.float64)).mean())
        if d < dist:
            best, dist = name, d
    return best


def _record_box_shown(image: np.ndarray) -> bool:
    box = image[_RECORD_BOX].astype(int)
    return bool(((box[..., 0] > 180) & (box[..., 2] < 130)).mean() > 0.3)


class _XTest:
    """Key taps and mouse clicks on a display through XTEST (menu walking only;
    the race itself gets no input: the ghost drives)."""

    def __init__(self, display: str) -> None:
        from Xlib import XK, X
        from Xlib.display import Display
        from Xlib.ext import xtest

        self._X, self._XK, self._xtest = X, XK, xtest
        self._d = Display(display)

    def tap(self, key: str) -> None:
        code = self._d.keysym_to_keycode(self._XK.string_to_keysym(key))
        self._xtest.fake_input(self._d, self._X.KeyPress, code)
        self._d.sync()
        self._xtest.fake_input(self._d, self._X.KeyRelease, code)
        self._d.sync()

    def click(self, x: int, y: int) -> None:
        self._xtest.fake_input(self._d, self._X.MotionNotify, x=x, y=y)
        self._xtest.fake_input(self._d, self._X.ButtonPress, 1)
        self._d.sync()
        self._xtest.fake_input(self._d, self._X.ButtonRelease, 1)
        self._d.sync()

    def close(self) -> None:
        self._d.close()


def _data_dir(root: Path, replay: Path, installed: Path) -> Path:
    """``root/data``: the installed data, with ``replay/`` holding only ``replay``."""
    data = root / "data"
    data.mkdir(parents=True)
    for entry in installed.iterdir():
        if entry.name != "replay":
            (data / entry.name).symlink_to(entry)
    (data / "replay").mkdir()
    shutil.copyfile(replay, data / "replay" / replay.name)
    return root


def _watch_config(settings: GameSettings, difficulty: int) -> str:
    """The config kartkit writes for races, plus a race setup that opens on
    the ghost replay mode at the replay's difficulty (so the replay list,
    filtered by the current difficulty, shows it)."""
    setup = (
        "    <RaceSetup\n"
        f'        difficulty="{difficulty}"\n'
        '        game_mode="6"\n'  # 6 = ghost replay (the config's own comment)
        "    >\n    </RaceSetup>\n"
    )
    text = config_xml(settings)
    at = text.index("    <enable_internet")
    return text[:at] + setup + text[at:]


class WatchedReplay:
    """The game playing one replay from the chase camera, in a private Xvfb,
    HOME and data directory; ended by process id on every exit path."""

    def __init__(
        self,
        replay: Replay,
        settings: GameSettings = DEMO_SETTINGS,
        *,
        log_file: Path | None = None,
    ) -> None:
        self.replay = replay
        self.log_file = log_file
        self.settings = settings
        self.install = GameInstall.find()
        self._display: HeadlessDisplay | None = None
        self._tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: RaceLog | None = None
        self.display = ""
        self.region: Region | None = None
        self._capture: ScreenCapture | None = None

    def __enter__(self) -> WatchedReplay:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        h = self.replay.header
        if h.mode != "time-trial":
            raise DemonstrationError(
                f"{h.path}: a {h.mode} replay; demonstrations are recorded from race replays"
            )
        self.install.check(h.track, "tux")
        self._tmp = Path(tempfile.mkdtemp(prefix="kartkit-stk-watch-"))
        home = self._tmp / "home"
        config_dir = write_config(home, self.settings)
        (config_dir / "config.xml").write_text(
            _watch_config(self.settings, DIFFICULTIES.index(h.difficulty))
        )
        datadir = _data_dir(self._tmp / "stk", Path(h.path), self.install.data)
        self._display = HeadlessDisplay(self.settings.screensize).start()
        self.display = self._display.name
        argv = [
            str(self.install.binary),
            f"--screensize={self.settings.screensize}",
            "--windowed",
            "--fps-debug",
            "--log=1",
        ]
        self.proc, self.log = launch_game(
            argv, game_env(home, self.display, SUPERTUXKART_DATADIR=str(datadir)), self.log_file
        )
        tracker = WindowRegion("SuperTuxKart", self.display)
        try:
            self.region = tracker.wait(MENU_STEP_S)
        finally:
            tracker.close()
        self._capture = ScreenCapture(self.display)

    def grab(self) -> np.ndarray:
        assert self._capture is not None and self.region is not None
        return self._capture.grab(self.region)

    def check_running(self, doing: str) -> None:
        """A one-line error if the game has exited (naming what kartkit was doing)."""
        assert self.proc is not None and self.log is not None
        if self.proc.poll() is not None:
            tail = self.log.tail()
            raise DemonstrationError(
                f"SuperTuxKart exited (code {self.proc.returncode}) while {doing}"
                + (f": {tail}" if tail else "")
            )

    def _wait_screen(self, ok: Callable[[np.ndarray], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_running(f"waiting for {what}")
            if ok(self.grab()):
                return
            if time.monotonic() > deadline:
                raise DemonstrationError(
                    f"{what} did not appear within {timeout_s:g} s "
                    f"(walking the menus to {self.replay.header.name})"
                )
            time.sleep(0.25)  # polling the screen, not synchronising

    def start_watching(self) -> None:
        """Walks the menus to the replay and starts it; returns once the game
        logs race frames (the track is loaded)."""
        x = _XTest(self.display)
        try:
            steps: list[tuple[str, list[str]]] = [
                ("main menu", ["Right", "Return"]),  # Story Mode → Singleplayer
                ("kart selection", ["Return"]),  # the default kart
                ("race setup", ["Return"]),  # the focused mode: ghost replay (config)
                ("ghost replay list", ["Down", "Down", "Return"]),  # header → row → open
            ]
            for screen, keys in steps:
                self._wait_screen(lambda im, s=screen: screen_name(im) == s, screen, MENU_STEP_S)
                for k in keys:
                    x.tap(k)
            self._wait_screen(
                lambda im: screen_name(im) == "replay dialog", "replay dialog", MENU_STEP_S
            )
            x.click(*_WATCH_BOX_XY)
            self._wait_screen(
                lambda im: not _record_box_shown(im), "'Watch replay only' ticked", MENU_STEP_S
            )
            x.click(*_START_XY)
        finally:
            x.close()
        assert self.log is not None
        frame = self.log.wait_for(lambda f: f is not None, RACE_START_S)
        if frame is None:
            self.check_running("loading the track")
            raise DemonstrationError(
                f"the watched replay {self.replay.header.name} did not start within {RACE_START_S:g} s"
            )

    def close(self) -> None:
        if self._capture is not None:
            self._capture.close()
            self._capture = None
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None
        if self.log is not None:
            self.log.join()
        if self._display is not None:
            self._display.close()
            self._display = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


# -- recording --------------------------------------------------------------------


def session_meta(replay: Replay, cfg: DemoConfig) -> SessionMeta:
    h = replay.header
    return SessionMeta(
        game="supertuxkart",
        track=h.track,
        player=f"expert:{h.karts[0].name or h.kart}",
        width=cfg.settings.width,
        height=cfg.settings.height,
        fps=cfg.capture_fps,
        image_format=cfg.image_format,
        tags=(SESSION_TAG, "expert", f"difficulty-{h.difficulty}"),
        extra={
            "replay": h.name,
            "replay_file": h.path,
            "difficulty": h.difficulty,
            "laps": h.laps,
            "reverse": h.reverse,
            "kart": h.kart,
            "expert_time_s": h.min_time,
            "replay_uid": h.uid,
            "stk_version": h.stk_version,
            "labels": "x=steer, r=skid accumulating, l=nitro flame; a/b derived "
            f"from speed change (brake < -{BRAKE_DECEL} m/s², throttle > -{COAST_DECEL} m/s²)",
            "time_source": "HUD race timer read on each frame",
        },
    )


def record_demonstration(cfg: DemoConfig) -> DemoResult:
    """Plays ``cfg.replay`` in the game and records it as a native session."""
    replay = read_replay(cfg.replay)
    font: TimerFont = font_for(cfg.settings.width, cfg.settings.height)
    # The race is over for the expert at the finish line (min_time); the game
    # then shows the result screen, which has no race timer.
    finish = min(replay.duration, replay.header.min_time)
    end_time = finish if cfg.seconds is None else min(cfg.seconds, finish)
    deadline = time.monotonic() + cfg.wall_limit_s
    frames = timed = 0
    first = last = -1.0
    first_timed = last_timed = -1
    last_seen = 0.0
    period = 1.0 / cfg.capture_fps
    meta = session_meta(replay, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    if (cfg.out / LABELS_FILE).exists():
        raise DemonstrationError(f"{cfg.out}: a demonstration is already recorded here")
    with WatchedReplay(replay, cfg.settings, log_file=cfg.out / GAME_LOG_FILE) as game:
        game.start_watching()
        with (
            SessionWriter(cfg.out, meta) as writer,
            (cfg.out / LABELS_FILE).open("w", newline="") as labels_file,
        ):
            labels = csv.writer(labels_file)
            labels.writerow(["frame", "game_time_s", "replay_line"])
            next_at = time.monotonic()
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise DemonstrationError(
                        f"{replay.header.name}: recording ran past {cfg.wall_limit_s:g} s "
                        f"(game time {last:.2f} s of {end_time:.2f} s)"
                    )
                game.check_running("recording")
                if now < next_at:
                    time.sleep(next_at - now)  # the capture rate, not synchronisation
                next_at = max(next_at + period, time.monotonic())
                t_ns = time.monotonic_ns()
                image = game.grab()
                t = font.read(image)
                if t is not None and t == last:
                    continue  # the game has not drawn a new frame since the last grab
                if t is None:
                    idx = writer.write(image, Pad(), t_ns=t_ns, tags=(UNTIMED_TAG, UNLABELLED_TAG))
                    labels.writerow([idx, "", ""])
                else:
                    pad, line = pad_at(replay, t)
                    idx = writer.write(image, pad, t_ns=t_ns)
                    labels.writerow([idx, f"{t:.3f}", line])
                    timed += 1
                    if first_timed < 0:
                        first_timed, first = idx, t
                    last_timed, last = idx, t
                    last_seen = time.monotonic()
                frames += 1
                if t is not None and t >= end_time:
                    break
                if t is None and first_timed >= 0 and time.monotonic() - last_seen > CLOCK_GONE_S:
                    break  # the race is over on screen (results), before end_time was read
    racing = last_timed - first_timed + 1 if first_timed >= 0 else 0
    return DemoResult(
        session=cfg.out,
        frames=frames,
        timed=timed,
        racing=racing,
        first_time_s=first,
        last_time_s=last,
    )


def race_replays(directory: Path = SHIPPED_REPLAY_DIR) -> list[Path]:
    """The shipped replays of races (time trials): the ones that become demonstrations."""
    return [p for p in shipped_replays(directory) if read_replay(p).header.mode == "time-trial"]


def record_replays(
    out_root: Path, replays: list[Path] | None = None, seconds: float | None = None
) -> list[DemoResult]:
    """One session per replay (default: every shipped race replay), each in
    ``out_root / "stk-<replay name>"``, one game after the other."""
    results = []
    for path in race_replays() if replays is None else replays:
        out = out_root / f"stk-{path.stem}"
        results.append(record_demonstration(DemoConfig(replay=path, out=out, seconds=seconds)))
    return results


__all__ = [
    "DEMO_SETTINGS",
    "GAME_LOG_FILE",
    "LABELS_FILE",
    "SESSION_TAG",
    "UNTIMED_TAG",
    "DemoConfig",
    "DemoResult",
    "DemonstrationError",
    "WatchedReplay",
    "pad_at",
    "race_replays",
    "record_demonstration",
    "record_replays",
]
