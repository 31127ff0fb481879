"""Synthetic kart recordings in every layout kartkit reads.

The frames are drawn, not random noise: a road in perspective that bends with
the steering, grass stripes that scroll, sky — so they compress, decode and
look to a detector like a game. Used by the sample job, the tests and the
benchmarks; nothing here is needed to use kartkit on real recordings.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kartdata.schema import Pad, SessionMeta
from kartdata.sources.native import SessionWriter, encode_image


@dataclass(frozen=True)
class Drive:
    """One synthetic drive: per-frame steering, gas, brake, recovery flag."""

    steer: np.ndarray
    gas: np.ndarray
    brake: np.ndarray
    recovery: np.ndarray


def drive(n: int, seed: int = 0, recovery_share: float = 0.0) -> Drive:
    """Smooth steering with real turns (held for a while), mostly gas."""
    rng = np.random.default_rng(seed)
    steer = np.zeros(n)
    target, s = 0.0, 0.0
    for i in range(n):
        if i % 25 == 0:
            target = float(rng.choice([-0.8, -0.4, 0.0, 0.0, 0.4, 0.8]))
        s += 0.2 * (target - s)
        steer[i] = s
    steer = np.clip(steer + rng.normal(0, 0.02, n), -1, 1)
    gas = (rng.random(n) > 0.1).astype(float)
    brake = ((rng.random(n) > 0.95) & (gas == 0)).astype(float)
    recovery = np.zeros(n, dtype=bool)
    if recovery_share > 0:
        seg = max(1, int(n * recovery_share))
        start = int(rng.integers(0, max(1, n - seg)))
        recovery[start : start + seg] = True
    return Drive(steer, gas, brake, recovery)


def render(steer: float, t: int, width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A frame of a road bending by ``steer`` at time step ``t``."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    horizon = height * 2 // 5
    sky = np.linspace(0, 1, horizon)[:, None]
    img[:horizon] = (np.array([110, 160, 235]) * (1 - 0.3 * sky))[:, None, :].astype(np.uint8)
    rows = np.arange(height - horizon)
    depth = (rows + 1) / (height - horizon)  # 0 far … 1 near
    centre = width / 2 - steer * width * 0.45 * (1 - depth) ** 2
    half = width * (0.04 + 0.42 * depth)
    xs = np.arange(width)[None, :]
    dist = np.abs(xs - centre[:, None])
    stripe = ((np.floor(8 / (depth + 0.05) + t * 0.9 + seed) % 2) == 0)[:, None]
    grass = np.where(stripe, 0, 1)[..., None] * np.array([0, 25, 0]) + np.array([40, 140, 40])
    road = np.array([105, 105, 110])
    kerb = np.where(stripe, 1, 0)[..., None] * np.array([200, 0, 0]) + np.array([230, 230, 230]) * (
        1 - np.where(stripe, 1, 0)[..., None]
    )
    lower = np.where((dist < half[:, None])[..., None], road, grass)
    edge = (dist >= half[:, None]) & (dist < half[:, None] * 1.08)
    lower = np.where(edge[..., None], kerb, lower)
    img[horizon:] = np.clip(lower, 0, 255).astype(np.uint8)
    # A kart at the bottom centre, like the games' third-person view.
    kw, kh = width // 10, height // 12
    x0, y0 = width // 2 - kw // 2 + int(steer * kw * 0.2), height - kh - height // 20
    img[y0 : y0 + kh, x0 : x0 + kw] = (200, 30, 30)
    return img


def frames(
    n: int, seed: int = 0, width: int = 640, height: int = 480
) -> Iterator[tuple[np.ndarray, Pad, bool]]:
    d = drive(n, seed)
    for i in range(n):
        yield render(d.steer[i], i, width, height, seed), _pad(d, i), bool(d.recovery[i])


def _pad(d: Drive, i: int) -> Pad:
    buttons = frozenset(b for b, on in (("a", d.gas[i]), ("b", d.brake[i])) if on)
    return Pad(x=float(d.steer[i]), y=0.0, buttons=buttons)


def make_native(
    path: str | Path,
    n: int,
    *,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    fps: float = 15.0,
    track: str = "synthetic",
    recovery_share: float = 0.0,
    tags: tuple[str, ...] = (),
) -> Path:
    """A native session of ``n`` synthetic frames."""
    path = Path(path)
    d = drive(n, seed, recovery_share)
    meta = SessionMeta(
        game="synthetic",
        track=track,
        player="synth",
        width=width,
        height=height,
        fps=fps,
        # A stamp from the seed, not the clock: the same call makes the same
        # session key, so hash splits of synthetic data are reproducible.
        created=_stamp(seed).isoformat(timespec="seconds"),
        tags=tags,
        extra={"seed": seed},
    )
    step = int(1e9 / fps)
    with SessionWriter(path, meta) as w:
        for i in range(n):
            w.write(
                render(d.steer[i], i, width, height, seed),
                _pad(d, i),
                t_ns=1_000_000_000 + i * step,
                tags=("recovery",) if d.recovery[i] else (),
            )
    return path


def make_tensorkart(
    path: str | Path, n: int, *, seed: int = 0, width: int = 640, height: int = 480
) -> Path:
    """A TensorKart session: headerless ``data.csv`` of ``path,x,y,a,b,rb`` with
    the recorder's own (stale) directory in each path, and ``img_<t>.png``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=False)
    d = drive(n, seed)
    with open(path / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        for i in range(n):
            name = f"img_{i}.png"
            (path / name).write_bytes(encode_image(render(d.steer[i], i, width, height, seed)))
            # TensorKart stored y unflipped: stick down positive.
            w.writerow(
                [f"samples/{path.name}/{name}", d.steer[i], 0.0, int(d.gas[i]), int(d.brake[i]), 0]
            )
    return path


def make_ctr(
    directory: str | Path,
    n: int = 500,
    *,
    seed: int = 0,
    user: str = "synth",
    track: str = "crash_cove",
    mode: str = "N",
    index: int = 0,
) -> Path:
    """A CTR-AI ``.npy``: a pickled object array of ``[image (90,160,3) BGR, one-hot]``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d = drive(n, seed)
    items = np.empty((n, 2), dtype=object)
    for i in range(n):
        rgb = render(d.steer[i], i, 160, 90, seed)
        cls = 0 if d.steer[i] < -0.15 else 2 if d.steer[i] > 0.15 else 1
        onehot = np.zeros(3, dtype=np.uint8)
        onehot[cls] = 1
        items[i, 0] = rgb[..., ::-1].copy()  # CTR-AI's frames are effectively BGR
        items[i, 1] = onehot
    stamp = _stamp(seed).strftime("%Y-%m-%d_%H-%M-%S")
    out = directory / f"{stamp}_{user}_{track}_{mode}_{index}.npy"
    np.save(out, items, allow_pickle=True)
    return out


def retouch_png(path: str | Path, *, store: bool = False) -> None:
    """A repaired frame: the PNG at ``path`` rewritten uncompressed (stored
    deflate blocks, so its byte size depends only on its pixel count), with one
    pixel changed unless ``store``. ``store`` first, then retouch, and the file
    keeps its size while its bytes change — the case a size check would miss."""
    from PIL import Image

    path = Path(path)
    with Image.open(path) as im:
        pixels = np.array(im.convert("RGB"))
    if not store:
        pixels[0, 0] ^= 1
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(pixels).save(tmp, format="PNG", compress_level=0)
    tmp.replace(path)


def _stamp(seed: int) -> datetime:
    return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=seed)
