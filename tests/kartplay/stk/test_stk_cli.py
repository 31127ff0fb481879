"""``kartplay stk race`` and ``kartplay stk keymap`` as a user runs them."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from xvfb import poll

from kartdata.devices import DisplayError, KeyMap
from kartdata.devices.x11 import open_display
from kartplay.stk.keys import STK_KEYMAP

KARTPLAY = [sys.executable, "-m", "kartplay.cli"]


def _gone(display: str) -> bool:
    try:
        open_display(display).close()
    except DisplayError:
        return True
    return False


def test_race_runs_until_sigterm_then_reports_and_ends_the_game() -> None:
    proc = subprocess.Popen(
        [*KARTPLAY, "stk", "race", "--track", "lighthouse"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ready = select.select([proc.stderr], [], [], 90)[0]
        line = proc.stderr.readline() if ready else ""
        m = re.search(r"display (:\d+), window 0,0,320,240", line)
        assert m, line
        display = m.group(1)
        assert not _gone(display)
        status = proc.stderr.readline()  # a second later: the race clock runs
        assert re.match(r"race +\d+\.\d+ s \| +0\.0 m \| game +\d+\.\d fps", status), status
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    m = re.fullmatch(r"not finished: race time (\d+\.\d+) s, distance 0\.0 m into the lap, "
                     r"(\d+) frames\n", out)  # fmt: skip
    assert m and float(m.group(1)) > 0 and int(m.group(2)) > 0, out
    assert poll(lambda: _gone(display), 10)  # its Xvfb ended with it


def test_race_with_an_unknown_track_is_one_line_and_exit_2() -> None:
    r = subprocess.run(
        [*KARTPLAY, "stk", "race", "--track", "nowhere"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "track 'nowhere' is not a race track" in r.stderr


def test_keymap_writes_the_key_map_the_recorder_and_drive_window_read(tmp_path: Path) -> None:
    out = tmp_path / "stk-keys.json"
    r = subprocess.run(
        [*KARTPLAY, "stk", "keymap", str(out)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert KeyMap.load(out) == STK_KEYMAP


@pytest.mark.parametrize("bad", ["--laps=0", "--width=10"])
def test_bad_race_settings_are_one_line(bad: str) -> None:
    r = subprocess.run([*KARTPLAY, "stk", "race", bad], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_demonstrate_names_the_bad_replay_line_and_records_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "broken.replay"
    bad.write_text("version: 4\nbogus\n")
    out = tmp_path / "sessions"
    r = subprocess.run(
        [*KARTPLAY, "stk", "demonstrate", "--out", str(out), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"{bad}:2:" in r.stderr, r.stderr
    assert not out.exists()
