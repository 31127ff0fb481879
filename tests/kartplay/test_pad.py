"""Pad ↔ plugin JSON ↔ BUTTONS word, against the layout in REFERENCE §3."""

from __future__ import annotations

import itertools

import pytest

from kartdata.schema import BUTTONS, PLUGIN_KEYS, Pad, SchemaError
from kartplay import pad as padmod

# The core's BUTTONS bits as the C header lays them out (m64p_plugin.h).
CORE_BITS = {
    "R_DPAD": 0x0001,
    "L_DPAD": 0x0002,
    "D_DPAD": 0x0004,
    "U_DPAD": 0x0008,
    "START_BUTTON": 0x0010,
    "Z_TRIG": 0x0020,
    "B_BUTTON": 0x0040,
    "A_BUTTON": 0x0080,
    "R_CBUTTON": 0x0100,
    "L_CBUTTON": 0x0200,
    "D_CBUTTON": 0x0400,
    "U_CBUTTON": 0x0800,
    "R_TRIG": 0x1000,
    "L_TRIG": 0x2000,
}


def test_json_has_all_16_integer_keys():
    obj = padmod.to_json_obj(Pad(x=1.0, y=-1.0, buttons=frozenset({"a", "start"})))
    assert set(obj) == set(PLUGIN_KEYS.values()) and len(obj) == 16
    assert all(type(v) is int for v in obj.values())
    assert obj["X_AXIS"] == 80 and obj["Y_AXIS"] == -80
    assert obj["A_BUTTON"] == 1 and obj["START_BUTTON"] == 1 and obj["B_BUTTON"] == 0


@pytest.mark.parametrize("button", BUTTONS)
def test_each_button_sets_exactly_its_core_bit(button):
    word = padmod.to_word(Pad(buttons=frozenset({button})))
    assert word == CORE_BITS[PLUGIN_KEYS[button]]
    assert padmod.from_word(word) == Pad(buttons=frozenset({button}))


def test_axes_in_word_match_reference_example():
    # REFERENCE §3: X=80, Y=-80 gives 0xb0500000.
    assert padmod.to_word(Pad(x=1.0, y=-1.0)) == 0xB0500000
    assert padmod.word_axes(0xB0500000) == (80, -80)


@pytest.mark.parametrize("v", [-1.0, -0.51, -0.0125, 0.0, 0.3, 0.999, 1.0])
def test_axis_round_trip_within_one_step(v):
    n = padmod.axis_to_int(v)
    assert -80 <= n <= 80
    assert abs(padmod.int_to_axis(n) - v) <= 0.5 / 80 + 1e-12


def test_all_button_words_round_trip_and_never_set_reserved_bits():
    combos = list(itertools.product([0, 1], repeat=len(BUTTONS)))
    assert len(combos) == 2**14
    for combo in combos:
        pad = Pad(
            x=-0.5, y=0.25, buttons=frozenset(b for b, on in zip(BUTTONS, combo, strict=True) if on)
        )
        word = padmod.to_word(pad)
        assert word & padmod.RESERVED_BITS == 0
        assert padmod.from_word(word) == pad
        assert padmod.from_json_obj(padmod.to_json_obj(pad)) == pad


def test_from_json_is_lenient_like_the_plugin():
    assert padmod.from_json_obj({}) == Pad()
    assert padmod.from_json_obj({"X_AXIS": 500, "Y_AXIS": -999}) == Pad(x=1.0, y=-1.0)
    assert padmod.from_json_obj({"A_BUTTON": 7}).buttons == {"a"}
    with pytest.raises(SchemaError, match="B_BUTTON"):
        padmod.from_json_obj({"B_BUTTON": "yes"})


def test_reserved_bits_rejected_when_decoding():
    with pytest.raises(SchemaError, match="reserved"):
        padmod.from_word(0x4000)
