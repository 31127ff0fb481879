"""The SuperTuxKart ``config.xml`` kartkit writes into a private HOME.

Only the settings that matter are written; the game fills in its defaults for
the rest (it reads each group's attributes one by one, ``src/config/user_config.cpp``)
and rewrites the whole file when it exits. What each one buys, measured on two
cores with Mesa's software OpenGL:

- ``enable_texture_compression="false"``: with compression on (the default) the
  game compresses every texture on first load; a track was still loading after
  5 minutes. Off, a time trial is on screen in about 8 s.
- ``enable_internet="2"`` (not allowed): no "connect to the internet?" dialog,
  and no network requests from a headless test machine.
- low effects (no dynamic lights, particles, light scattering, animated
  characters; lowest geometry level; small textures): fewer pixels for
  llvmpipe to shade, so more frames per second.
- sound off: there is no sound device under Xvfb anyway.
- ``unlock_everything="2"``: every track and kart can be raced (a fresh player
  has most locked behind story mode).

``players.xml`` gets one player who has played before (``use-frequency="1"``),
which is what stops the "play the tutorial?" dialog at the main menu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kartdata.errors import KartError

#: Where the game keeps its config under HOME (1.4 still calls it 0.10).
CONFIG_DIR = Path(".config/supertuxkart/config-0.10")
#: The config format version SuperTuxKart 1.4 reads (older ones are discarded).
CONFIG_VERSION = 8


class GameConfigError(KartError):
    """The game settings asked for cannot be written."""


@dataclass(frozen=True, slots=True)
class GameSettings:
    """The settings kartkit writes; the window size is also what the game renders."""

    width: int = 320
    height: int = 240
    #: Low effects everywhere (see the module docstring); False keeps the
    #: game's own defaults for the effects (texture compression stays off).
    low_effects: bool = True

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 8192 and 64 <= self.height <= 8192):
            raise GameConfigError(f"window size {self.width}x{self.height} is not 64..8192")

    @property
    def screensize(self) -> str:
        return f"{self.width}x{self.height}"


def config_xml(settings: GameSettings) -> str:
    """The ``config.xml`` text for ``settings``."""
    w, h = settings.width, settings.height
    video = {
        "real_width": w,
        "real_height": h,
        "width": w,
        "height": h,
        "fullscreen": "false",
        "enable_texture_compression": "false",
        "old_driver_popup": "false",
    }
    gfx: dict[str, object] = {}
    if settings.low_effects:
        video |= {
            "enable_high_definition_textures": 2,  # bit 1 set: the user's choice, off
            "enable_dynamic_lights": "false",
            "enable_glow": "false",
            "enable_bloom": "false",
            "enable_light_shaft": "false",
            "enable_dof": "false",
            "max_texture_size": 128,
        }
        gfx = {
            "particles-effecs": 0,  # sic: the game's spelling
            "geometry_level": 2,
            "animated-characters": "false",
            "anisotropic": 0,
            "light_scatter": "false",
            "shadows_resolution": 0,
            "motionblur_enabled": "false",
            "mlaa": "false",
            "ssao": "false",
        }

    def group(name: str, attrs: dict[str, object]) -> str:
        inner = "".join(f'\n        {k}="{v}"' for k, v in attrs.items())
        return f"    <{name}{inner}\n    >\n    </{name}>\n"

    parts = [
        '<?xml version="1.0"?>\n',
        f'<stkconfig version="{CONFIG_VERSION}" >\n',
        group("Audio", {"sfx_on": "false", "music_on": "false"}),
        group("Video", video),
    ]
    if gfx:
        parts.append(group("GFX", gfx))
    parts += [
        '    <enable_internet value="2" />\n',
        '    <unlock_everything value="2" />\n',
        "</stkconfig>\n",
    ]
    return "".join(parts)


#: One player, not new (so no tutorial question); the game adds the rest.
PLAYERS_XML = """<?xml version="1.0"?>
<players version="1" >
    <current player="Player"/>
    <player name="Player" guest="false" use-frequency="1" unique-id="1"
            icon-filename="" saved-session="false" saved-user="0" saved-token=""
            last-online-name="" last-was-online="false" remember-password="false"
            default-kart-color="0">
    </player>
</players>
"""


def write_config(home: Path, settings: GameSettings) -> Path:
    """Writes ``config.xml`` and ``players.xml`` under ``home``; returns the
    game's config directory."""
    d = home / CONFIG_DIR
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.xml").write_text(config_xml(settings))
        (d / "players.xml").write_text(PLAYERS_XML)
    except OSError as e:
        raise GameConfigError(f"{d}: cannot write the game's config ({e.strerror})") from None
    return d
