"""The desktop detector's labelled evaluation set, built by the tests.

Game frames come from the simulator (CarRacing-v3 driven by the pure-pursuit
expert, ``render()`` at 600x400). Desktop frames are real screenshots: real X
programs (xterm with a file listing, a text file in ``less``, xclock, xeyes,
xcalc, xmessage) on a private Xvfb server with several root backgrounds,
captured with ``kartdata.devices.capture`` — the code the recorder uses. Partly covered
frames paste a captured program window over a game frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xvfb import poll as xvfb_poll
from xvfb import xvfb

from kartdata.devices.capture import Region, ScreenCapture, find_window
from kartdata.schema import Pad, SessionMeta
from kartdata.sources.native import SessionWriter

W, H = 600, 400


def sim_frames(n: int, seed: int, every: int = 2, warmup: int = 0) -> np.ndarray:
    """``n`` rendered frames of the expert driving track ``seed``."""
    from kartplay.sim.env import make_env
    from kartplay.sim.expert import Expert

    env = make_env("rgb_array")
    try:
        env.reset(seed=seed)
        expert = Expert()
        expert.reset(env)
        out = np.empty((n, H, W, 3), np.uint8)
        k, step = 0, 0
        while k < n:
            env.step(expert.act(env))
            if step >= warmup and step % every == 0:
                out[k] = env.render()
                k += 1
            step += 1
        return out
    finally:
        env.close()


def poll(fn: Callable[[], object], timeout_s: float = 20.0, what: str = "condition") -> object:
    v = xvfb_poll(fn, timeout_s, interval_s=0.05)
    if v is None or v is False:
        raise TimeoutError(f"{what} not met within {timeout_s} s")
    return v


@dataclass
class Desktop:
    whole: list[np.ndarray]  # 600x400 captures of the screen
    windows: list[np.ndarray]  # captured program windows, for occlusion


_PROGRAMS: list[tuple[str, list[str]]] = [
    (
        "h3-listing",
        [
            "xterm",
            "-T",
            "h3-listing",
            "-geometry",
            "90x32+{x}+{y}",
            "-e",
            "sh",
            "-c",
            "ls -la /usr/bin | head -200; sleep 600",
        ],
    ),
    (
        "h3-less",
        [
            "xterm",
            "-T",
            "h3-less",
            "-fa",
            "",
            "-bg",
            "white",
            "-fg",
            "black",
            "-geometry",
            "80x28+{x}+{y}",
            "-e",
            "less",
            "/etc/services",
        ],
    ),
    ("h3-clock", ["xclock", "-title", "h3-clock", "-update", "1", "-geometry", "220x220+{x}+{y}"]),
    ("h3-eyes", ["xeyes", "-title", "h3-eyes", "-geometry", "260x180+{x}+{y}"]),
    ("h3-calc", ["xcalc", "-title", "h3-calc", "-geometry", "+{x}+{y}"]),
    (
        "h3-message",
        [
            "xmessage",
            "-title",
            "h3-message",
            "-geometry",
            "+{x}+{y}",
            "The capture region lost the emulator window.\n"
            "Save changes to ~/notes.txt before closing?",
        ],
    ),
]
_BACKGROUNDS: list[list[str]] = [
    ["-solid", "#000000"],
    ["-solid", "#3a6ea5"],
    ["-solid", "#d8d8d8"],
    ["-mod", "12", "12", "-fg", "#505a64", "-bg", "#2b3038"],
]


def capture_desktop(
    env: dict[str, str], rng: np.random.Generator, arrangements: int = 3
) -> Desktop:
    """Screenshots of real programs on the display in ``env`` (800x600)."""
    for tool in ("xterm", "xclock", "xeyes", "xcalc", "xmessage", "xsetroot", "xdotool"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (scripts/setup.sh installs it)")
    procs: list[subprocess.Popen[bytes]] = []
    whole: list[np.ndarray] = []
    windows: list[np.ndarray] = []
    cap = ScreenCapture(env["DISPLAY"])
    try:
        for _title, argv in _PROGRAMS:
            x, y = (int(v) for v in rng.integers(0, 150, 2))
            cmd = [a.format(x=x, y=y) for a in argv]
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        regions: dict[str, Region] = {}
        for title, _ in _PROGRAMS:
            regions[title] = poll(  # type: ignore[assignment]
                lambda t=title: find_window(t, env["DISPLAY"]), what=f"window {title}"
            )
        # wait until every window has drawn something (its pixels are not flat)
        screen = cap.screen()
        for title, found in regions.items():
            region = Region(
                found.x,
                found.y,
                min(found.width, screen.width - found.x),
                min(found.height, screen.height - found.y),
            )
            poll(lambda r=region: cap.grab(r).std() > 10, what=f"{title} drawn")
            windows.append(cap.grab(region))
        for bg in _BACKGROUNDS:
            subprocess.run(["xsetroot", *bg], env=env, check=True, timeout=30)
            for _ in range(arrangements):
                for title in regions:
                    x, y = (int(v) for v in rng.integers(0, 500, 2))
                    _xdotool(env, "search", "--name", f"^{title}$", "windowmove", str(x), str(y))
                for _ in range(4):
                    ox, oy = int(rng.integers(0, 200)), int(rng.integers(0, 200))
                    shot = poll(lambda ox=ox, oy=oy: _settled(cap, Region(ox, oy, W, H)))
                    whole.append(shot)  # type: ignore[arg-type]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        cap.close()
    return Desktop(whole=whole, windows=windows)


def _settled(cap: ScreenCapture, region: Region) -> np.ndarray | None:
    """A capture that equals the one right after it (the X server has finished
    redrawing after windows moved)."""
    a = cap.grab(region)
    b = cap.grab(region)
    return a if np.array_equal(a, b) else None


def _xdotool(env: dict[str, str], *args: str) -> None:
    subprocess.run(["xdotool", *args], env=env, capture_output=True, timeout=30)


def occlude(game: np.ndarray, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``game`` with ``window`` pasted over 25–70 % of it, where a window might sit."""
    wh, ww = window.shape[:2]
    for _ in range(200):
        x = int(rng.integers(-ww // 2, W - ww // 4))
        y = int(rng.integers(-wh // 2, H - wh // 4))
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + ww), min(H, y + wh)
        share = max(0, x1 - x0) * max(0, y1 - y0) / (W * H)
        if 0.25 <= share <= 0.7:
            out = game.copy()
            out[y0:y1, x0:x1] = window[y0 - y : y1 - y, x0 - x : x1 - x]
            return out
    # a small window: scale it up (a maximised program) until it covers enough
    reps = int(np.ceil(np.sqrt(0.3 * W * H / (wh * ww))))
    big = np.kron(window, np.ones((reps, reps, 1), np.uint8))
    return occlude(game, big, rng)


@dataclass
class Labelled:
    path: Path
    desktop: set[int]  # frame indexes that show (part of) the desktop


def write_session(
    path: Path,
    game: np.ndarray,
    desktop_share: float,
    desk: Desktop,
    rng: np.random.Generator,
    partial_share: float = 0.35,
) -> Labelled:
    """A native session of ``game`` frames with ``desktop_share`` of its frames
    replaced by desktop (in runs, as when a window goes missing for a while)."""
    n = len(game)
    k = round(desktop_share * n)
    bad = _runs(n, k, rng)
    meta = SessionMeta(game="carracing", track="eval", width=W, height=H, fps=25.0)
    with SessionWriter(path, meta) as w:
        for i in range(n):
            if i in bad:
                if rng.random() < partial_share:
                    image = occlude(
                        game[i], desk.windows[int(rng.integers(len(desk.windows)))], rng
                    )
                else:
                    image = desk.whole[int(rng.integers(len(desk.whole)))]
            else:
                image = game[i]
            x = float(np.sin(i / 15.0))
            w.write(image, Pad(x=x, buttons=frozenset({"a"})), t_ns=i * 40_000_000)
    return Labelled(path, bad)


def _runs(n: int, k: int, rng: np.random.Generator) -> set[int]:
    """``k`` frame indexes in runs of 1–12 frames, spread over the session."""
    out: set[int] = set()
    while len(out) < k:
        length = int(rng.integers(1, 13))
        start = int(rng.integers(0, n))
        for i in range(start, min(n, start + length)):
            if len(out) < k:
                out.add(i)
    return out


def rates(labels: set[int], flagged: set[int], n: int) -> tuple[float, float, float]:
    """(recall on desktop frames, false-positive rate on game frames, precision)."""
    tp = len(labels & flagged)
    fp = len(flagged - labels)
    recall = tp / len(labels) if labels else 1.0
    fpr = fp / (n - len(labels))
    precision = tp / len(flagged) if flagged else 1.0
    return recall, fpr, precision


@contextmanager
def xvfb_env(size: str = "800x600x24") -> Iterator[dict[str, str]]:
    """An environment whose ``DISPLAY`` is a private Xvfb."""
    with xvfb(size) as (_, name):
        yield {**os.environ, "DISPLAY": name}
