"""Where the installed SuperTuxKart is, and which tracks and karts it has.

Debian's ``supertuxkart`` puts the binary in ``/usr/games`` (not on every
``PATH``) and its data in ``/usr/share/games/supertuxkart/data``. ``SUPERTUXKART``
names another binary; ``SUPERTUXKART_DATADIR`` another directory holding
``data/`` (the game itself reads that variable the same way).
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kartdata.errors import KartError

DEBIAN_BINARY = Path("/usr/games/supertuxkart")
DEBIAN_DATA = Path("/usr/share/games/supertuxkart/data")


class GameNotInstalledError(KartError):
    """SuperTuxKart (or its data) is not on this machine."""


class UnknownTrackError(KartError):
    """A track or kart name the installed game does not have."""


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("y", "yes", "true", "1")


@dataclass(frozen=True)
class GameInstall:
    binary: Path
    data: Path

    @classmethod
    def find(cls) -> GameInstall:
        """The installed game, or a one-line :class:`GameNotInstalledError`."""
        env = os.environ.get("SUPERTUXKART")
        found = env or shutil.which("supertuxkart")
        binary = Path(found) if found else DEBIAN_BINARY
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise GameNotInstalledError(
                f"SuperTuxKart is not installed ({binary} missing; Debian: apt-get install "
                "supertuxkart, which scripts/setup.sh does; or set SUPERTUXKART=/path/to/binary)"
            )
        root = os.environ.get("SUPERTUXKART_DATADIR")
        data = Path(root) / "data" if root else DEBIAN_DATA
        if not (data / "tracks").is_dir():
            raise GameNotInstalledError(
                f"SuperTuxKart's data is not at {data} (Debian: supertuxkart-data; "
                "or set SUPERTUXKART_DATADIR)"
            )
        return cls(binary, data)

    @cached_property
    def race_tracks(self) -> tuple[str, ...]:
        """Tracks a time trial can run on: not arenas, soccer fields, cutscenes
        or the story-mode overworld (their ``track.xml`` says so)."""
        out = []
        for xml in sorted((self.data / "tracks").glob("*/track.xml")):
            try:
                root = ET.parse(xml).getroot()
            except ET.ParseError:
                continue  # a broken add-on track is not one to offer
            if not any(_yes(root.get(k)) for k in ("arena", "soccer", "internal", "cutscene")):
                out.append(xml.parent.name)
        return tuple(out)

    @cached_property
    def karts(self) -> tuple[str, ...]:
        return tuple(sorted(p.parent.name for p in (self.data / "karts").glob("*/kart.xml")))

    def check(self, track: str, kart: str | None = None) -> None:
        """One-line errors for a track or kart the game would refuse or ignore
        (it silently races with tux when the kart is unknown); ``None``: the
        track alone."""
        if track not in self.race_tracks:
            raise UnknownTrackError(
                f"track {track!r} is not a race track of {self.data}; "
                f"have: {', '.join(self.race_tracks)}"
            )
        if kart is not None and kart not in self.karts:
            raise UnknownTrackError(
                f"kart {kart!r} is not in {self.data / 'karts'}; have: {', '.join(self.karts)}"
            )
