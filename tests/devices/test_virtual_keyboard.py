"""The virtual keyboard against a real X server: a real client receives
exactly the presses it sends, nothing stays down after close or after the
sending process is killed, bad keys and missing displays are one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from xvfb import poll

from kartdata.devices.controls import InputError
from kartdata.devices.keyboard import held_keycodes
from kartdata.devices.keymap import KeyMap
from kartdata.devices.virtual_keyboard import VirtualKeyboard
from kartdata.devices.x11 import DisplayError, keycode, open_display

REPO = Path(__file__).resolve().parents[2]


def codes(xdisplay, *names: str) -> list[int]:  # type: ignore[no-untyped-def]
    d = open_display(xdisplay.name)
    try:
        return [keycode(d, n) for n in names]
    finally:
        d.close()


def down_now(xdisplay) -> set[int]:  # type: ignore[no-untyped-def]
    d = open_display(xdisplay.name)
    try:
        return held_keycodes(d)
    finally:
        d.close()


def test_a_real_client_receives_exactly_the_keys_sent(xdisplay, key_log) -> None:  # type: ignore[no-untyped-def]
    left, up, a, space = codes(xdisplay, "Left", "Up", "a", "space")
    with VirtualKeyboard(xdisplay.name, KeyMap()) as kb:
        kb.press("Up")
        kb.press("Left")
        kb.press("Up")  # already held: nothing is sent
        assert kb.held == {"Up", "Left"}
        assert {up, left} <= down_now(xdisplay)
        kb.set_held({"Up", "a"})  # Left up, a down; Up stays
        kb.release("Up")
        kb.set_held({"a", "space"})
        assert key_log.until(6)[:6] and kb.held == {"a", "space"}
    # closing released a and space
    events = key_log.until(8)
    got = [(k, c) for k, c, _ in events]
    assert got == [
        ("press", up), ("press", left),
        ("release", left), ("press", a),
        ("release", up),
        ("press", space),
        ("release", a), ("release", space),
    ]  # fmt: skip
    times = [t for _, _, t in events]
    assert times == sorted(times)
    assert not {left, up, a, space} & down_now(xdisplay)
    # and nothing else arrived
    assert len(key_log.events(wait_s=0.3)) == 8


def test_keys_are_released_when_the_process_is_killed(xdisplay) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(f"""
        import sys, time
        from kartdata.devices.virtual_keyboard import VirtualKeyboard
        from kartdata.devices.keymap import KeyMap
        kb = VirtualKeyboard({xdisplay.name!r}, KeyMap())
        kb.set_held({{"Right", "a"}})
        print("held", flush=True)
        time.sleep(600)
    """)
    right, a = codes(xdisplay, "Right", "a")
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            env={**xdisplay.env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
            assert {right, a} <= down_now(xdisplay)
        finally:
            os.kill(proc.pid, sig)
            proc.wait(timeout=30)
        # the guard saw its pipe close and released what the process held
        assert poll(lambda: not {right, a} & down_now(xdisplay), timeout_s=10), sig


def test_bad_keys_and_displays_are_one_line_errors(xdisplay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = KeyMap(left="NoSuchKey")
    with pytest.raises(InputError, match=r"key 'NoSuchKey' is not a key on this X display"):
        VirtualKeyboard(xdisplay.name, bad)
    with VirtualKeyboard(xdisplay.name, KeyMap(), guard=False) as kb:
        with pytest.raises(InputError, match=r"'Hyper_Q'"):
            kb.press("Hyper_Q")
        assert kb.held == frozenset()
    with pytest.raises(DisplayError, match=r"cannot open X display ':4321'"):
        VirtualKeyboard(":4321", KeyMap())
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    r = subprocess.run(
        [sys.executable, "-c", "from kartdata.devices.virtual_keyboard import VirtualKeyboard as V; V()"],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and "no X display: set DISPLAY" in r.stderr
    f = tmp_path / "keys.json"
    f.write_text('{"stick": {"left": "Left"},\n "buttons": {"a": 3}}')
    with pytest.raises(InputError, match=r"keys\.json: buttons\.a: a key name or a list of them"):
        KeyMap.load(f)
