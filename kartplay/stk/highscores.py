"""SuperTuxKart's ``highscore.xml``: the finish times it keeps per track, mode,
laps and difficulty (``src/race/highscores.cpp``), the game's own record of a
finished race. A race
enters the table only if it is among the five best for its kind, so a private
HOME (an empty table) records every finish.

    <highscores version="4">
      <highscore track-name="lighthouse" number-karts="1" difficulty="2"
                 hscore-type="HST_STD_TIMETRIAL" number-of-laps="1" reverse="0">
        <entry time="41.25" name="Player" kartname="tux"/>
      </highscore>
    </highscores>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from kartdata.errors import KartError

HIGHSCORE_FILE = "highscore.xml"


class HighscoreError(KartError):
    """A highscore file that cannot be read."""


@dataclass(frozen=True, slots=True)
class Highscore:
    track: str
    mode: str
    laps: int
    karts: int
    difficulty: int
    kart: str
    player: str
    time_s: float


def read_highscores(path: Path) -> list[Highscore]:
    """Every entry in ``path``; an absent file has none."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        return []
    except ET.ParseError as e:
        raise HighscoreError(f"{path}:{e.position[0]}: not valid XML ({e})") from None
    out = []
    for table in root.iter("highscore"):
        for entry in table.iter("entry"):
            try:
                out.append(
                    Highscore(
                        track=table.get("track-name", "").strip(),
                        mode=table.get("hscore-type", "").strip(),
                        laps=int(table.get("number-of-laps", "0")),
                        karts=int(table.get("number-karts", "0")),
                        difficulty=int(table.get("difficulty", "0")),
                        kart=entry.get("kartname", "").strip(),
                        player=entry.get("name", "").strip(),
                        time_s=float(entry.get("time", "")),
                    )
                )
            except ValueError:
                raise HighscoreError(
                    f"{path}: highscore for {table.get('track-name')!r} has a bad number"
                ) from None
    return out
