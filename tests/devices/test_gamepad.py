"""The gamepad through SDL's GameController API: named pads map through SDL's
controller database, and a mapping file overrides it (raw elements, or an SDL
mapping of its own). Driven by SDL virtual joysticks with real pads' identities."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kartdata.devices import sdl
from kartdata.devices.controls import InputError
from kartdata.devices.gamepad import DEFAULT_PAD_MAPPING, Gamepad, PadMapping
from kartdata.devices.sdl_virtual import SdlVirtualPad
from kartdata.schema import Pad

XBOX, PS4 = "Microsoft X-Box 360 pad", "PS4 Controller"


def raw(mapping: dict[str, str], element: str) -> int:
    """The raw index SDL's mapping gives a controller element (``'b7'`` → 7)."""
    return int(mapping[element].lstrip("+-abh").split(".")[0].rstrip("~"))


@pytest.mark.parametrize("model", [XBOX, PS4])
def test_a_named_pad_maps_through_sdls_database(model: str) -> None:
    with SdlVirtualPad(model) as vp:
        pad = Gamepad(vp.index)
        try:
            assert pad.name == model
            m = pad.sdl_mapping
            assert m is not None
            # the mapping SDL applies is its database's entry for that name
            for part in vp.mapping.split(","):
                key, value = part.split(":", 1)
                if key != "hint":
                    assert m[key] == value, (key, m[key], value)
            # press Start, A and the left trigger by their raw numbers in this model
            vp.set_button(raw(m, "start"), True)
            vp.set_button(raw(m, "a"), True)
            vp.set_axis(raw(m, "lefttrigger"), 1.0)
            vp.set_axis(raw(m, "leftx"), -1.0)
            vp.set_axis(raw(m, "lefty"), -1.0)  # SDL: up is negative
            vp.set_button(raw(m, "guide"), True)
            got = pad.read()
            assert got.pad == Pad(-1.0, 1.0, frozenset({"start", "a", "z"}))
            assert got.hotkeys == frozenset({"record"})
            vp.set_button(raw(m, "a"), False)
            vp.set_axis(raw(m, "lefttrigger"), -1.0)
            assert pad.read().pad == Pad(-1.0, 1.0, frozenset({"start"}))
        finally:
            pad.close()


def test_the_two_models_differ_raw_but_read_the_same() -> None:
    """The point of the database: Start is raw button 7 on the Xbox pad and 9 on
    the PS4 pad; pressing raw 9 on the Xbox pad is no Start."""
    with SdlVirtualPad(XBOX) as xb, SdlVirtualPad(PS4) as ps:
        gx, gp = Gamepad(xb.index), Gamepad(ps.index)
        try:
            assert raw(gx.sdl_mapping or {}, "start") != raw(gp.sdl_mapping or {}, "start")
            xb.set_button(9, True)
            ps.set_button(9, True)
            assert gp.read().pad.buttons == frozenset({"start"})
            assert "start" not in gx.read().pad.buttons
        finally:
            gx.close()
            gp.close()


def test_a_mapping_file_with_raw_numbers_overrides_the_database(tmp_path: Path) -> None:
    f = tmp_path / "pad.json"
    # this player wants raw button 3 (Y on an Xbox pad) as A, and the raw hat as the stick
    f.write_text(
        json.dumps({"buttons": {"a": {"button": 3}, "start": [{"hat": 0, "direction": "up"}]}})
    )
    mapping = PadMapping.load(f)
    with SdlVirtualPad(XBOX) as vp:
        pad = Gamepad(vp.index, mapping)
        try:
            vp.set_button(0, True)  # SDL's A: no longer bound
            assert pad.read().pad.buttons == frozenset()
            vp.set_button(3, True)
            vp.set_hat(0, (0, 1))
            assert pad.read().pad.buttons == frozenset({"a", "start"})
            # what the file leaves out stays the default (the stick, hotkeys)
            vp.set_axis(0, 1.0)
            vp.set_button(6, True)  # Back
            got = pad.read()
            assert got.pad.x == 1.0 and got.hotkeys == frozenset({"recovery"})
        finally:
            pad.close()


def test_a_mapping_files_sdl_entry_replaces_the_database_entry(tmp_path: Path) -> None:
    with SdlVirtualPad(XBOX) as vp:
        # raw button 1 (B on this pad) becomes SDL's "a"; raw 0 becomes "b"
        swapped = vp.mapping.replace("a:b0", "a:bX").replace("b:b1", "b:b0").replace("a:bX", "a:b1")
        f = tmp_path / "pad.json"
        f.write_text(json.dumps({"sdl": swapped}))
        pad = Gamepad(vp.index, PadMapping.load(f))
        try:
            assert (pad.sdl_mapping or {})["a"] == "b1"
            vp.set_button(1, True)
            assert pad.read().pad.buttons == frozenset({"a"})
        finally:
            pad.close()
    # SDL's database is one per process: put the entry back for the pads opened after this
    sdl.add_mapping(vp.guid, XBOX, vp.mapping)


def test_a_pad_sdl_does_not_know_needs_raw_numbers(tmp_path: Path) -> None:
    import ctypes

    from kartdata.devices.sdl_virtual import _Desc, _prototypes

    lib = sdl.library()
    _prototypes(lib)
    desc = _Desc(version=1, type=0, naxes=2, nbuttons=4, nhats=0, name=b"kartkit odd stick")
    index = lib.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
    assert index >= 0
    try:
        sdl.pump()
        with pytest.raises(
            InputError, match=r"'kartkit odd stick'.*not in SDL's controller database"
        ):
            Gamepad(index)
        f = tmp_path / "odd.json"
        f.write_text(json.dumps({
            "stick": {"x": {"axis": 0}, "y": {"axis": 1}},
            "buttons": {"a": {"button": 2}}, "hotkeys": {},
        }))  # fmt: skip
        pad = Gamepad(index, PadMapping.load(f))
        try:
            assert pad.sdl_mapping is None
            assert pad.read().pad == Pad()
        finally:
            pad.close()
    finally:
        lib.SDL_JoystickDetachVirtual(index)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"pad\.json:1: not valid JSON"),
        ('{"buttons": {"a": {"button": "triangle"}}}', r"'triangle' is not an SDL controller name"),
        ('{"buttons": {"q": {"button": 0}}}', r"unknown name 'q'"),
        ('{"sdl": 3}', r"'sdl' must be an SDL mapping string"),
        ('{"stick": {"deadzone": 1.5}}', r"deadzone 1.5 is not in \[0, 1\)"),
    ],
)
def test_bad_mapping_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "pad.json"
    f.write_text(content)
    with pytest.raises(InputError, match=message) as e:
        PadMapping.load(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


def test_the_default_mapping_round_trips_through_json() -> None:
    assert PadMapping.from_json(DEFAULT_PAD_MAPPING.to_json()) == DEFAULT_PAD_MAPPING


def test_reading_pads_leaves_no_video_driver_for_the_programs_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pygame

    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    pygame.display.quit()
    sdl.init()
    assert pygame.display.get_init()
    assert "SDL_VIDEODRIVER" not in os.environ
