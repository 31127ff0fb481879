"""The replay reader on every replay the installed game ships, and on broken copies.

CI installs SuperTuxKart (scripts/setup.sh), so a missing game fails here
rather than skipping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kartplay.stk.replay import (
    DIFFICULTIES,
    SAMPLE_FIELDS,
    SHIPPED_REPLAY_DIR,
    ReplayError,
    read_replay,
    shipped_replays,
)

GAME_DATA = SHIPPED_REPLAY_DIR.parent
LIGHTHOUSE = SHIPPED_REPLAY_DIR / "standard_intermediate_lighthouse.replay"


def _raw_samples(path: Path) -> list[list[str]]:
    """The sample lines split on whitespace, found independently of the reader:
    every line with 26 fields that starts with a number."""
    rows = []
    for text in path.read_text().splitlines():
        fields = text.split()
        if len(fields) == len(SAMPLE_FIELDS) and fields[0][0].isdigit():
            rows.append(fields)
    return rows


def test_the_game_ships_29_replays() -> None:
    assert len(shipped_replays()) == 29


@pytest.mark.parametrize("path", shipped_replays(), ids=lambda p: p.stem)
def test_every_shipped_replay_parses(path: Path) -> None:
    replay = read_replay(path)
    h = replay.header
    raw = _raw_samples(path)
    samples = replay.samples
    assert len(samples) == len(raw)
    assert list(samples.columns) == [*SAMPLE_FIELDS, "line"]
    # Every value is the file's, field for field.
    want = np.array(raw, dtype=np.float64)
    np.testing.assert_allclose(samples[list(SAMPLE_FIELDS)].to_numpy(np.float64), want, atol=1e-9)
    assert (GAME_DATA / "tracks" / h.track).is_dir(), f"{h.track} is not a track of the game"
    assert h.difficulty in DIFFICULTIES
    assert h.kart.isidentifier()  # a kart ident (some are add-on karts the game lacks)
    assert h.mode in ("time-trial", "egg-hunt")
    # The recorded kart's finish time falls within its last second of samples.
    assert replay.duration - 1.5 < h.min_time <= replay.duration
    assert samples["time"].iloc[0] == 0.0
    assert samples["steer"].abs().max() <= 1.0
    if h.mode == "time-trial":
        assert h.laps >= 1
        # Distance down the track starts behind the line (<= 0) and ends past
        # the last lap.
        assert samples["distance"].iloc[0] <= 0 < samples["distance"].iloc[-1]


def test_distance_per_lap_agrees_between_drivers() -> None:
    """The distance column is the game's track distance: replays of the same
    track (either way round) end at the same distance per lap."""
    per_lap: dict[str, list[float]] = {}
    for path in shipped_replays():
        r = read_replay(path)
        if r.header.mode == "time-trial":
            per_lap.setdefault(r.header.track, []).append(
                r.samples["distance"].iloc[-1] / r.header.laps
            )
    shared = {k: v for k, v in per_lap.items() if len(v) > 1}
    assert sorted(shared) == ["cocoa_temple", "mines", "olivermath", "sandtrack"]
    for track, lengths in shared.items():
        assert max(lengths) / min(lengths) < 1.01, (track, lengths)


def test_header_fields_and_names() -> None:
    r = read_replay(SHIPPED_REPLAY_DIR / "standard_reverse_supertux_mines.replay")
    assert (r.header.track, r.header.laps, r.header.reverse) == ("mines", 3, True)
    assert r.header.difficulty == "supertux"
    assert r.header.name == "standard_reverse_supertux_mines"
    sandtrack = read_replay(SHIPPED_REPLAY_DIR / "standard_novice_sandtrack.replay").header
    assert sandtrack.karts[0].ident == "pidgin"
    assert sandtrack.karts[0].name == "☆★STK★☆"  # decoded from &#x2606;&#x2605;STK…
    assert (sandtrack.difficulty, sandtrack.min_time) == ("novice", pytest.approx(216.24614))


def test_samples_at_times_are_the_ones_in_effect() -> None:
    r = read_replay(LIGHTHOUSE)
    t = r.samples["time"].to_numpy()
    # Mid-way between two samples, on one, and before the first.
    query = np.array([(t[10] + t[11]) / 2, t[40], -1.0])
    got = r.at(query)
    assert got["line"].tolist() == [
        r.samples["line"].iloc[10],
        r.samples["line"].iloc[40],
        r.samples["line"].iloc[0],
    ]


# -- broken copies ------------------------------------------------------------


def _broken(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    lines = LIGHTHOUSE.read_text().splitlines(keepends=True)
    edit(lines)
    path = tmp_path / "broken.replay"
    path.write_text("".join(lines))
    return path


def _sample_line(lines: list[str], k: int) -> int:
    """0-based index of the k-th sample line (the header of this file has 13 lines)."""
    assert lines[12].startswith("size:")
    return 13 + k


def _error(path: Path) -> str:
    with pytest.raises(ReplayError) as info:
        read_replay(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_truncated_line(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 99)
        lines[i] = lines[i][: len(lines[i]) // 2] + "\n"

    path = _broken(tmp_path, edit)
    assert _error(path).startswith(f"{path}:113: ")
    assert "fields, a version-4 sample has 26" in _error(path)


def test_file_cut_short(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__delitem__(slice(500, None)))
    message = _error(path)
    assert message.startswith(f"{path}:501: ")
    assert "promises 1357 samples, found 487" in message


def test_bad_number(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 5)
        fields = lines[i].split()
        fields[9] = "0.1x5"
        lines[i] = " ".join(fields) + "\n"

    path = _broken(tmp_path, edit)
    assert _error(path) == f"{path}:19: field 10 (steer) '0.1x5' is not a number"


def test_float_where_an_integer_belongs(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 7)
        fields = lines[i].split()
        fields[14] = "1.5"
        lines[i] = " ".join(fields) + "\n"

    path = _broken(tmp_path, edit)
    assert _error(path) == f"{path}:21: field 15 (skid_state) '1.5' is not an integer"


def test_wrong_field_count(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 0)
        lines[i] = lines[i].rstrip("\n") + " 0\n"

    path = _broken(tmp_path, edit)
    assert _error(path) == f"{path}:14: 27 fields, a version-4 sample has 26"


def test_wrong_version(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__setitem__(0, "version: 3\n"))
    assert _error(path) == (f"{path}:1: replay format version 3; this reader reads version 4")


def test_size_larger_than_the_samples(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__setitem__(12, "size:     1358\n"))
    assert _error(path) == (
        f"{path}:1371: 'size: 1358' at line 13 promises 1358 samples, found 1357"
    )


def test_size_smaller_than_the_samples(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__setitem__(12, "size:     1356\n"))
    message = _error(path)
    assert message.startswith(f"{path}:1370: text after the last kart's samples")


def test_size_not_a_number(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__setitem__(12, "size: many\n"))
    assert _error(path) == f"{path}:13: size 'many' is not an integer"


def test_value_out_of_range(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 30)
        fields = lines[i].split()
        fields[9] = "1.700000"
        lines[i] = " ".join(fields) + "\n"

    path = _broken(tmp_path, edit)
    assert _error(path) == f"{path}:44: steer 1.7 is outside [-1, 1]"


def test_time_going_back(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        i = _sample_line(lines, 50)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]

    path = _broken(tmp_path, edit)
    assert "goes back from" in _error(path)
    assert _error(path).startswith(f"{path}:65: ")


def test_missing_header_line(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda lines: lines.__delitem__(8))  # track:
    assert _error(path) == f"{path}:9: expected 'track: …', found 'laps: 3'"


def test_not_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "x.replay"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert _error(path).startswith(f"{path}:")
    assert (
        _error(tmp_path / "absent.replay") == f"{tmp_path / 'absent.replay'}: no such replay file"
    )
