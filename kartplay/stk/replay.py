"""SuperTuxKart ghost replays (``.replay``, format version 4) as typed tables.

The layout is the one SuperTuxKart 1.4 writes (``ReplayRecorder::save``) and
reads (``ReplayPlay::addReplayFile`` / ``readKartData``) in
``src/replay/replay_{recorder,play}.cpp``::

    version: 4
    stk_version: 1.4
    kart: IDENT DISPLAY-NAME            } once per recorded kart; the name
    kart_color: HUE                     } is XML-encoded and may be absent
    kart_list_end
    reverse: 0|1
    difficulty: 0..3
    mode: time-trial|egg-hunt|…
    track: IDENT
    info: FREE TEXT                     (optional; later game versions)
    laps: N
    min_time: SECONDS                   (the best finish time of the recorded karts)
    replay_uid: N
    size: N                             } once per kart, in kart order,
    N lines of 26 whitespace-separated  } each followed by its samples
    sample fields (SAMPLE_COLUMNS)

A sample is written whenever the recorder's ``ReplayRecorder::update`` sees
``replay_dt`` (about 0.05 s) pass, or sooner when the steering, skid state,
speed, items or nitro change markedly; its ``time`` is the world clock
(``World::getTime``), which is also what the HUD race timer shows and what the
ghost is interpolated at when the game plays the replay back.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from kartdata.errors import SourceError

#: The only format version this reader understands (SuperTuxKart 1.0 … 1.5).
REPLAY_VERSION = 4

#: Where the Debian package puts the replays shipped with the game.
SHIPPED_REPLAY_DIR = Path("/usr/share/games/supertuxkart/data/replay")

Difficulty = Literal["novice", "intermediate", "expert", "supertux"]
#: ``RaceManager::Difficulty`` 0..3 by the names the game's menus show.
DIFFICULTIES: tuple[Difficulty, ...] = ("novice", "intermediate", "expert", "supertux")

#: ``Skidding::SkidState``.
SKID_STATES: tuple[str, ...] = (
    "none",
    "accumulate_left",
    "accumulate_right",
    "show_gfx_left",
    "show_gfx_right",
    "break",
)
#: ``ReplayRecorder::enumToCode(Attachment::AttachmentType)``.
ATTACHMENTS: tuple[str, ...] = ("none", "parachute", "anvil", "bomb", "swatter", "bubblegum")
#: ``ReplayRecorder::enumToCode(PowerupManager::PowerupType)``.
ITEM_TYPES: tuple[str, ...] = (
    "none",
    "bubblegum",
    "cake",
    "bowling",
    "zipper",
    "plunger",
    "switch",
    "swatter",
    "rubberball",
    "parachute",
)

#: The 26 fields of a sample line, in file order, with their column dtype.
#: ``steer`` is ``Kart::getSteerPercent`` in [-1, 1], negative = left (the
#: player controller drives it toward -1 while the left key is held);
#: ``distance`` is the overall distance down the track in metres (negative
#: before the start line is first crossed); ``nitro_usage`` and
#: ``skid_effect`` are particle-emitter creation rates (``KartGFX::getGFXStatus``),
#: non-zero while nitro burns / while skid sparks show.
SAMPLE_COLUMNS: tuple[tuple[str, type], ...] = (
    ("time", float),
    ("x", float),
    ("y", float),
    ("z", float),
    ("qx", float),
    ("qy", float),
    ("qz", float),
    ("qw", float),
    ("speed", float),
    ("steer", float),
    ("suspension_0", float),
    ("suspension_1", float),
    ("suspension_2", float),
    ("suspension_3", float),
    ("skid_state", int),
    ("attachment", int),
    ("nitro_amount", float),
    ("item_amount", int),
    ("item_type", int),
    ("special_value", int),
    ("distance", float),
    ("nitro_usage", int),
    ("zipper", int),
    ("skid_effect", int),
    ("red_skid", int),
    ("jumping", int),
)
SAMPLE_FIELDS: tuple[str, ...] = tuple(name for name, _ in SAMPLE_COLUMNS)
_INT_COLUMNS = frozenset(name for name, kind in SAMPLE_COLUMNS if kind is int)
#: Closed value sets a sample field must fall in.
_RANGES: dict[str, tuple[int, int]] = {
    "skid_state": (0, len(SKID_STATES) - 1),
    "attachment": (0, len(ATTACHMENTS) - 1),
    "item_type": (0, len(ITEM_TYPES) - 1),
    "zipper": (0, 1),
    "red_skid": (0, 1),
    "jumping": (0, 1),
}
#: The game writes steer as a float in [-1, 1] with six decimals.
_STEER_LIMIT = 1.0 + 1e-6


class ReplayError(SourceError):
    """A ``.replay`` file that is not what the game writes; names the file and line."""


@dataclass(frozen=True, slots=True)
class ReplayKart:
    """One recorded kart of a replay's kart list."""

    ident: str
    #: The driver's name as shown in the game (XML entities decoded); "" if absent.
    name: str
    #: Hue of the kart's colour (``kart_color``); 0 is the kart's own colour.
    color: float


@dataclass(frozen=True, slots=True)
class ReplayHeader:
    """A replay's header lines."""

    path: str
    version: int
    stk_version: str
    karts: tuple[ReplayKart, ...]
    reverse: bool
    difficulty: Difficulty
    mode: str
    track: str
    laps: int
    #: The best finish time of the recorded karts, in seconds of game time.
    min_time: float
    uid: int
    info: str = ""

    def __post_init__(self) -> None:
        if self.version != REPLAY_VERSION:
            raise ReplayError(f"{self.path}: version {self.version}, expected {REPLAY_VERSION}")
        if not self.karts:
            raise ReplayError(f"{self.path}: no kart in the kart list")
        if self.difficulty not in DIFFICULTIES:
            raise ReplayError(f"{self.path}: difficulty {self.difficulty!r} not in {DIFFICULTIES}")
        if not self.track:
            raise ReplayError(f"{self.path}: empty track name")
        if self.laps < 0:
            raise ReplayError(f"{self.path}: negative lap count {self.laps}")
        if not math.isfinite(self.min_time) or self.min_time < 0:
            raise ReplayError(f"{self.path}: min_time {self.min_time} is not a time")

    @property
    def name(self) -> str:
        """The replay's file name without ``.replay``, e.g. ``standard_novice_sandtrack``."""
        return Path(self.path).stem

    @property
    def kart(self) -> str:
        """The first (recording) kart's ident."""
        return self.karts[0].ident


@dataclass(frozen=True)
class Replay:
    """A parsed replay: its header and one sample table per recorded kart.

    Each table has the :data:`SAMPLE_FIELDS` columns (``int64`` for the
    integer fields, ``float64`` otherwise) and a ``line`` column with the
    sample's 1-based line number in the file, for error messages downstream.
    """

    header: ReplayHeader
    kart_samples: tuple[pd.DataFrame, ...]

    @property
    def samples(self) -> pd.DataFrame:
        """The first kart's samples: the driver the replay was recorded for."""
        return self.kart_samples[0]

    @property
    def duration(self) -> float:
        """Game time of the first kart's last sample."""
        return float(self.samples["time"].iloc[-1])

    def at(self, times: np.ndarray | float, kart: int = 0) -> pd.DataFrame:
        """The samples in effect at game ``times``: for each time, the row of the
        last sample at or before it (the game's ghost uses the same index,
        ``GhostController::update``). Times before the first sample get the
        first one; each result row keeps its sample's ``time`` and ``line``."""
        table = self.kart_samples[kart]
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        idx = np.searchsorted(table["time"].to_numpy(), t, side="right") - 1
        return table.iloc[np.clip(idx, 0, len(table) - 1)].reset_index(drop=True)


class _Lines:
    """The file's lines with their numbers, for errors that say where."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.pos = 0

    def error(self, line: int, what: str) -> ReplayError:
        return ReplayError(f"{self.path}:{line}: {what}")

    def next(self, expect: str) -> tuple[int, str]:
        if self.pos >= len(self.lines):
            raise ReplayError(f"{self.path}:{self.pos + 1}: file ends where {expect} was expected")
        self.pos += 1
        return self.pos, self.lines[self.pos - 1].rstrip("\r")

    def peek(self) -> str | None:
        return self.lines[self.pos].rstrip("\r") if self.pos < len(self.lines) else None

    def field(self, key: str) -> tuple[int, str]:
        """The value of the next line, which must be ``key: value``."""
        line, text = self.next(f"'{key}:'")
        head, sep, value = text.partition(":")
        if not sep or head != key:
            raise self.error(line, f"expected '{key}: …', found {_show(text)}")
        return line, value.strip()

    def number(self, key: str, kind: type[int] | type[float]) -> int | float:
        line, value = self.field(key)
        try:
            number = kind(value)
        except ValueError:
            raise self.error(line, f"{key} {value!r} is not {_kind_name(kind)}") from None
        if kind is float and not math.isfinite(number):
            raise self.error(line, f"{key} {value!r} is not a finite number")
        return number


def read_replay(path: str | Path) -> Replay:
    """Parse and validate a ``.replay`` file.

    Raises :class:`ReplayError` (one line: file, line, what is wrong) for a
    file the game would refuse or misread: a missing or misplaced header line,
    another version, a sample line without exactly 26 numbers, a number where
    an integer belongs, a value out of its range, times that go backwards, a
    ``size:`` that does not match the lines that follow, or text after the
    last kart's samples.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such replay file") from None
    except IsADirectoryError:
        raise ReplayError(f"{path}: is a directory, not a replay file") from None
    except PermissionError:
        raise ReplayError(f"{path}: not readable (permission denied)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ReplayError(f"{path}:{line}: not UTF-8 text") from None
    lines = _Lines(path, text)
    header = _read_header(lines)
    tables = tuple(_read_samples(lines, k) for k in range(len(header.karts)))
    while (rest := lines.peek()) is not None:
        line, _ = lines.next("")
        if rest.strip():
            raise lines.error(
                line, f"text after the last kart's samples: {_show(rest)} (a 'size:' too small?)"
            )
    return Replay(header=header, kart_samples=tables)


def shipped_replays(directory: str | Path = SHIPPED_REPLAY_DIR) -> list[Path]:
    """The ``.replay`` files the installed game ships, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReplayError(
            f"{directory}: no replay directory (is SuperTuxKart installed? apt-get install supertuxkart)"
        )
    return sorted(directory.glob("*.replay"))


def _read_header(lines: _Lines) -> ReplayHeader:
    line, value = lines.field("version")
    try:
        version = int(value)
    except ValueError:
        raise lines.error(line, f"version {value!r} is not an integer") from None
    if version != REPLAY_VERSION:
        raise lines.error(
            line, f"replay format version {version}; this reader reads version {REPLAY_VERSION}"
        )
    _, stk_version = lines.field("stk_version")
    karts: list[ReplayKart] = []
    while True:
        line, text = lines.next("'kart:' or 'kart_list_end'")
        if text.strip() == "kart_list_end":
            break
        head, sep, value = text.partition(":")
        if head != "kart" or not sep or not value.strip():
            raise lines.error(
                line, f"expected 'kart: IDENT NAME' or 'kart_list_end', found {_show(text)}"
            )
        ident, _, name = value.strip().partition(" ")
        color = float(lines.number("kart_color", float))
        karts.append(ReplayKart(ident=ident, name=html.unescape(name.strip()), color=color))
    if not karts:
        raise lines.error(line, "kart_list_end before any 'kart:' line")
    reverse_line, reverse_text = lines.field("reverse")
    if reverse_text not in ("0", "1"):
        raise lines.error(reverse_line, f"reverse {reverse_text!r} is not 0 or 1")
    diff_line = lines.pos + 1
    difficulty = int(lines.number("difficulty", int))
    if not 0 <= difficulty < len(DIFFICULTIES):
        raise lines.error(diff_line, f"difficulty {difficulty} is not 0..{len(DIFFICULTIES) - 1}")
    _, mode = lines.field("mode")
    track_line, track = lines.field("track")
    if not track:
        raise lines.error(track_line, "empty track name")
    info = ""
    if (lines.peek() or "").startswith("info:"):
        _, info = lines.field("info")
    laps_line = lines.pos + 1
    laps = int(lines.number("laps", int))
    if laps < 0:
        raise lines.error(laps_line, f"negative lap count {laps}")
    min_line = lines.pos + 1
    min_time = float(lines.number("min_time", float))
    if min_time < 0:
        raise lines.error(min_line, f"min_time {min_time} is negative")
    uid = int(lines.number("replay_uid", int))
    return ReplayHeader(
        path=str(lines.path),
        version=version,
        stk_version=stk_version,
        karts=tuple(karts),
        reverse=reverse_text == "1",
        difficulty=DIFFICULTIES[difficulty],
        mode=mode,
        track=track,
        laps=laps,
        min_time=min_time,
        uid=uid,
        info=info,
    )


def _read_samples(lines: _Lines, kart: int) -> pd.DataFrame:
    size_line = lines.pos + 1
    size = int(lines.number("size", int))
    if size < 1:
        raise lines.error(size_line, f"kart {kart} has size {size}; a replay needs samples")
    values = np.empty((size, len(SAMPLE_COLUMNS)), dtype=np.float64)
    numbers = np.empty(size, dtype=np.int64)
    n_fields = len(SAMPLE_COLUMNS)
    for i in range(size):
        if lines.peek() is None or lines.peek().startswith("size:"):  # type: ignore[union-attr]
            raise lines.error(
                lines.pos + 1,
                f"'size: {size}' at line {size_line} promises {size} samples, found {i}",
            )
        line, text = lines.next("a sample line")
        fields = text.split()
        if len(fields) != n_fields:
            raise lines.error(line, f"{len(fields)} fields, a version-4 sample has {n_fields}")
        for j, (name, kind) in enumerate(SAMPLE_COLUMNS):
            try:
                values[i, j] = int(fields[j]) if kind is int else float(fields[j])
            except ValueError:
                raise lines.error(
                    line, f"field {j + 1} ({name}) {fields[j]!r} is not {_kind_name(kind)}"
                ) from None
        numbers[i] = line
    table = pd.DataFrame(values, columns=list(SAMPLE_FIELDS))
    _check_samples(lines, table, numbers)
    for name in _INT_COLUMNS:
        table[name] = table[name].astype(np.int64)
    table["line"] = numbers
    return table


def _check_samples(lines: _Lines, table: pd.DataFrame, numbers: np.ndarray) -> None:
    """Value checks over whole columns; the first offending sample is named."""
    finite = np.isfinite(table.to_numpy())
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise lines.error(int(numbers[i]), f"{SAMPLE_FIELDS[j]} is not a finite number")
    steer = table["steer"].to_numpy()
    bad = np.flatnonzero(np.abs(steer) > _STEER_LIMIT)
    if bad.size:
        raise lines.error(int(numbers[bad[0]]), f"steer {steer[bad[0]]} is outside [-1, 1]")
    for name, (lo, hi) in _RANGES.items():
        col = table[name].to_numpy()
        bad = np.flatnonzero((col < lo) | (col > hi))
        if bad.size:
            raise lines.error(
                int(numbers[bad[0]]), f"{name} {int(col[bad[0]])} is not in {lo}..{hi}"
            )
    for name in ("item_amount", "nitro_usage", "skid_effect"):
        col = table[name].to_numpy()
        bad = np.flatnonzero(col < 0)
        if bad.size:
            raise lines.error(int(numbers[bad[0]]), f"{name} {int(col[bad[0]])} is negative")
    t = table["time"].to_numpy()
    if t[0] < 0:
        raise lines.error(int(numbers[0]), f"time {t[0]} is negative")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = back[0] + 1
        raise lines.error(
            int(numbers[i]), f"time {t[i]} goes back from {t[i - 1]} (line {int(numbers[i - 1])})"
        )


def _kind_name(kind: type) -> str:
    return "an integer" if kind is int else "a number"


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
