"""The race timer SuperTuxKart draws at the top right of its HUD, read from pixels.

``RaceGUI::drawGlobalTimer`` (SuperTuxKart 1.4) draws ``World::getTime()`` as
``MM:SS.mmm`` (``StringUtils::timeToString``: rounded to the millisecond) in the
high-resolution digit font, white with a black border, left-aligned at
``width - 10 - width_of("99:99.999")`` and ``height * 2 / 100``. It is the
world clock of the very frame it is drawn on, which is also the clock a ghost
replay is played back at (``GhostController::update``), so a captured frame's
timer names the replay sample the ghost shows. The timer is not drawn before
the race starts (track intro, Ready / Set) or outside a race (menus, loading).

The digits are proportional, so the timer is read glyph by glyph from its left
edge: each glyph is a template of pixels that are always white (the glyph),
always dark (its border) and don't-care (background showing through), learnt
from real frames whose clock the game logged (:func:`learn_font`). The glyph
shapes depend on the window size; :data:`FONTS` holds the ones kartkit has
learnt, by window size.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kartdata.errors import KartError

#: The characters of the timer, by position: ``MM:SS.mmm``.
TIMER_FORMAT = "DD:DD.DDD"
DIGITS = "0123456789"
#: A pixel is white (the glyph's fill) when every channel is at least this …
WHITE_MIN = 200
#: … and dark (its border) when every channel is at most this.
DARK_MAX = 80
#: A glyph matches when this share of its template's white and dark pixels agree.
MATCH_MIN = 0.92
#: A template pixel is white / dark when it was so in this share of the frames.
TEMPLATE_AGREEMENT = 0.97


class HudError(KartError):
    """No learnt timer font for a window size, or frames a font cannot be learnt from."""


@dataclass(frozen=True)
class Glyph:
    """One character: ``white`` and ``dark`` masks of its cell (rows x advance)."""

    char: str
    white: np.ndarray
    dark: np.ndarray

    @property
    def advance(self) -> int:
        return int(self.white.shape[1])

    def rows(self) -> tuple[str, ...]:
        """The template as text: ``#`` white, ``o`` dark, ``.`` don't care."""
        return tuple(
            "".join("#" if w else ("o" if d else ".") for w, d in zip(wr, dr, strict=True))
            for wr, dr in zip(self.white, self.dark, strict=True)
        )

    @classmethod
    def from_rows(cls, char: str, rows: Sequence[str]) -> Glyph:
        a = np.array([list(r) for r in rows])
        return cls(char, a == "#", a == "o")


@dataclass(frozen=True)
class TimerFont:
    """Where the timer is in a ``width`` x ``height`` window and what its glyphs look like.

    ``top`` and ``x0`` are the top-left of the first glyph's cell (one pixel of
    border above the glyph, one to its left)."""

    width: int
    height: int
    top: int
    x0: int
    glyphs: dict[str, Glyph]

    def __post_init__(self) -> None:
        missing = set(DIGITS + ":.") - set(self.glyphs)
        if missing:
            raise HudError(f"timer font {self.width}x{self.height} lacks {sorted(missing)}")
        heights = {g.white.shape[0] for g in self.glyphs.values()}
        if len(heights) != 1:
            raise HudError(f"timer font {self.width}x{self.height}: glyph heights differ")

    @property
    def rows(self) -> int:
        return int(next(iter(self.glyphs.values())).white.shape[0])

    def read(self, image: np.ndarray) -> float | None:
        """The race clock on ``image`` (the whole window, RGB) in seconds, or
        None where no timer is drawn or a glyph does not match."""
        if image.shape[0] != self.height or image.shape[1] != self.width:
            raise HudError(
                f"frame is {image.shape[1]}x{image.shape[0]}, the timer font is for "
                f"{self.width}x{self.height}"
            )
        band = image[self.top : self.top + self.rows]
        white = band.min(axis=2) >= WHITE_MIN
        dark = band.max(axis=2) <= DARK_MAX
        x, chars = self.x0, []
        for kind in TIMER_FORMAT:
            candidates = DIGITS if kind == "D" else kind
            best, best_score = None, -1.0
            for c in candidates:
                g = self.glyphs[c]
                if x + g.advance > self.width:
                    continue
                score = _score(g, white[:, x : x + g.advance], dark[:, x : x + g.advance])
                if score > best_score:
                    best, best_score = g, score
            if best is None or best_score < MATCH_MIN:
                return None
            chars.append(best.char)
            x += best.advance
        text = "".join(chars)
        return int(text[0:2]) * 60 + int(text[3:5]) + int(text[6:9]) / 1000


def _score(g: Glyph, white: np.ndarray, dark: np.ndarray) -> float:
    agree = np.count_nonzero(white & g.white) + np.count_nonzero(dark & g.dark)
    return agree / max(1, np.count_nonzero(g.white) + np.count_nonzero(g.dark))


def timer_text(seconds: float) -> str:
    """``StringUtils::timeToString(seconds)``: ``MM:SS.mmm``, rounded to the ms."""
    ms = int(seconds * 1000 + 0.5)
    return f"{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def learn_font(frames: Iterable[tuple[np.ndarray, float]]) -> TimerFont:
    """Learns the timer's glyphs from real frames of one window size, each
    with the race clock the game logged around it (which may lag the drawn
    clock by a frame or two: only the minutes, seconds and ``:`` ``.`` glyphs
    are labelled from it, away from a change of second, and a glyph shape
    becomes a template only when its labels agree).

    The timer is found as the runs of white columns in the top rows of the
    right half; the first glyph's left edge is where most frames start."""
    cells: dict[str, list[tuple[np.ndarray, np.ndarray]]] = collections.defaultdict(list)
    shapes: dict[bytes, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    starts: collections.Counter[int] = collections.Counter()
    parsed: list[tuple[np.ndarray, list[tuple[int, int]], str, float]] = []
    size: tuple[int, int] | None = None
    for image, clock in frames:
        h, w = image.shape[:2]
        if size is None:
            size = (w, h)
        elif size != (w, h):
            raise HudError(f"frames of two sizes ({size[0]}x{size[1]} and {w}x{h})")
        runs = _runs(image)
        if len(runs) < len(TIMER_FORMAT):
            continue
        runs = runs[-len(TIMER_FORMAT) :]
        starts[runs[0][0]] += 1
        parsed.append((image, runs, timer_text(clock), clock % 1.0))
    if size is None or not parsed:
        raise HudError("no frame shows the race timer; learn from frames of a running race")
    w, h = size
    x_first = starts.most_common(1)[0][0]
    top, bottom = _band(h)
    for image, runs, text, frac in parsed:
        if runs[0][0] != x_first:
            continue
        band = image[top - 1 : bottom + 1]
        white = band.min(axis=2) >= WHITE_MIN
        dark = band.max(axis=2) <= DARK_MAX
        for pos, ((x, _), ch) in enumerate(zip(runs, text, strict=True)):
            if pos >= 6 or (pos in (3, 4) and not 0.15 < frac < 0.85):
                continue  # milliseconds, or a second that may just have changed
            nxt = runs[pos + 1][0]
            cell = (white[:, x - 1 : nxt - 1], dark[:, x - 1 : nxt - 1])
            shapes[cell[0].tobytes() + bytes([cell[0].shape[1]])][ch] += 1
            cells[ch].append(cell)
    glyphs: dict[str, Glyph] = {}
    for ch, found in cells.items():
        width = collections.Counter(c[0].shape[1] for c in found).most_common(1)[0][0]
        same = [c for c in found if c[0].shape[1] == width]
        white_share = np.mean([c[0] for c in same], axis=0)
        dark_share = np.mean([c[1] for c in same], axis=0)
        glyphs[ch] = Glyph(ch, white_share >= TEMPLATE_AGREEMENT, dark_share >= TEMPLATE_AGREEMENT)
    missing = sorted(set(DIGITS + ":.") - set(glyphs))
    if missing:
        raise HudError(
            f"the frames never showed {missing} in the timer's minutes or seconds; "
            "learn from a longer race (at least 10 s)"
        )
    return TimerFont(width=w, height=h, top=top - 1, x0=x_first - 1, glyphs=glyphs)


def _band(height: int) -> tuple[int, int]:
    """Rows the digit font's glyphs fill (white), learnt at 400x300 as rows
    10..17: the game's timer box is ``height*2/100 .. height*6/100``."""
    top = height * 2 // 100
    bottom = height * 6 // 100
    return top + (bottom - top) // 3, bottom


def _runs(image: np.ndarray) -> list[tuple[int, int]]:
    """Column runs holding white pixels in the timer rows, right half only."""
    h, w = image.shape[:2]
    top, bottom = _band(h)
    band = image[top:bottom, w // 2 :]
    cols = (band.min(axis=2) >= WHITE_MIN).any(axis=0)
    runs, start = [], None
    for x, c in enumerate([*cols.tolist(), False]):
        if c and start is None:
            start = x
        elif not c and start is not None:
            runs.append((start + w // 2, x + w // 2))
            start = None
    return runs


def font_for(width: int, height: int) -> TimerFont:
    """The learnt timer font for a window size."""
    try:
        spec = FONTS[(width, height)]
    except KeyError:
        sizes = ", ".join(f"{w}x{h}" for w, h in sorted(FONTS))
        raise HudError(
            f"no learnt HUD timer font for a {width}x{height} window (learnt: {sizes}); "
            "learn one with kartplay.stk.hud.learn_font"
        ) from None
    top, x0, rows = spec
    return TimerFont(
        width=width,
        height=height,
        top=top,
        x0=x0,
        glyphs={c: Glyph.from_rows(c, r) for c, r in rows.items()},
    )


def font_literal(font: TimerFont) -> str:
    """``font`` as the Python literal :data:`FONTS` holds (to paste a new size in)."""
    lines = [f"    ({font.width}, {font.height}): (", f"        {font.top},", f"        {font.x0},"]
    lines.append("        {")
    for c in DIGITS + ":.":
        lines.append(f"            {c!r}: (")
        lines += [f'                "{r}",' for r in font.glyphs[c].rows()]
        lines.append("            ),")
    lines += ["        },", "    ),"]
    return "\n".join(lines)


#: Learnt timer fonts: (width, height) → (top, x0, glyph rows).
#: Learnt by :func:`learn_font` from a time trial on sandtrack (SuperTuxKart 1.4,
#: the low-effects config of :mod:`kartplay.stk.config`).
FONTS: dict[tuple[int, int], tuple[int, int, dict[str, tuple[str, ...]]]] = {
    (400, 300): (
        9,
        317,
        {
            "0": (
                "oooooooooo",
                "oo.###.ooo",
                "o#######oo",
                "o###o###.o",
                "o###o.###o",
                ".###o.###o",
                "o###o.##.o",
                "o#######.o",
                "oo.####.oo",
                "oooooooooo",
            ),
            "1": (
                "ooooooo",
                "o#####o",
                ".#####o",
                ".#####o",
                "..####o",
                "oo####o",
                "oo####o",
                "oo####o",
                "oo####o",
                "ooooooo",
            ),
            "2": (
                "oooooooo",
                "o..###oo",
                ".######o",
                "o#.####.",
                "ooo####o",
                "ooo###.o",
                "oo####.o",
                "o.#####.",
                "o######o",
                "oooooooo",
            ),
            "3": (
                "oooooooo",
                "o.###.oo",
                ".#####.o",
                "ooo####o",
                "oo.###.o",
                "oo.####o",
                "ooo.###o",
                "o######o",
                "o#####.o",
                "oooooooo",
            ),
            "4": (
                "ooooooooo",
                "oo.####.o",
                "oo#####.o",
                "o.##.##.o",
                "o###.##.o",
                "o##..##.o",
                ".########",
                ".########",
                "o....##.o",
                "ooooo##.o",
            ),
            "5": (
                "oooooooo",
                "o#####.o",
                "o#####.o",
                "o###.ooo",
                "o#####oo",
                "o..####o",
                "ooo####o",
                "o######o",
                "o#####.o",
                "oooooooo",
            ),
            "6": (
                "ooooooooo",
                "oo.#####o",
                "o.######o",
                "o####oooo",
                ".######.o",
                ".#######.",
                "o####o##.",
                "o.######.",
                "oo..##..o",
                "ooooooooo",
            ),
            "7": (
                "oooooooo",
                ".######o",
                ".######.",
                ".######o",
                "ooo####o",
                "oo.###.o",
                "oo####oo",
                "o.###.oo",
                "o.###ooo",
                "oo.#.ooo",
            ),
            "8": (
                "oooo.ooooo",
                "o.######oo",
                "o###.###.o",
                "o###o###.o",
                "o#######oo",
                "o###..###o",
                ".###..###o",
                "o###.####o",
                "oo.####.oo",
                "oooooooooo",
            ),
            "9": (
                "ooooooooo",
                "oo.###.oo",
                "o#######o",
                ".##o.###.",
                "o#######.",
                "o..#####.",
                "oo...###.",
                "o.######o",
                "o..###.oo",
                "ooooooooo",
            ),
            ":": (
                "ooooo",
                "ooooo",
                "o###o",
                "o###o",
                "o###o",
                "ooooo",
                "o###o",
                "o###o",
                "o###o",
                "ooooo",
            ),
            ".": (
                ".....",
                ".....",
                "....o",
                "o...o",
                "ooooo",
                "ooooo",
                "o###o",
                "o###o",
                "o###o",
                "ooooo",
            ),
        },
    ),
}


#: What moves with the chase camera rather than the world, as (top, left,
#: bottom, right) fractions of the frame (the same at 320x240 and 400x300,
#: checked on recorded frames): the player's own kart, the timer and lap count,
#: the driver icon, the item box, the minimap and the speedometer. A view
#: turned for training (``AugmentConfig.turn_keep``) keeps these in place.
CAMERA_FIXED: tuple[tuple[float, float, float, float], ...] = (
    (0.40, 0.40, 0.66, 0.60),
    (0.00, 0.74, 0.17, 1.00),
    (0.00, 0.00, 0.16, 0.12),
    (0.00, 0.38, 0.14, 0.62),
    (0.58, 0.00, 1.00, 0.33),
    (0.74, 0.78, 1.00, 1.00),
)
