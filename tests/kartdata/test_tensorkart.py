from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from kartdata import synth
from kartdata.errors import SourceError
from kartdata.sources import open_source
from kartdata.sources.base import recording_of
from kartdata.sources.tensorkart import FRAME_NS, RESTART_GAP_NS, TensorKartSession


def _rows(session: Path) -> list[list[str]]:
    with open(session / "data.csv", newline="") as f:
        return list(csv.reader(f))


def _write_rows(session: Path, rows: list[list[str]]) -> None:
    with open(session / "data.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_maps_controls_and_resolves_by_file_name(tensorkart_session: Path) -> None:
    rows = _rows(tensorkart_session)
    rows[3][2], rows[3][3], rows[3][4], rows[3][5] = "0.25", "0", "1", "1"
    _write_rows(tensorkart_session, rows)
    s = open_source(tensorkart_session)
    assert isinstance(s, TensorKartSession)
    assert (s.meta.width, s.meta.height, s.meta.fps) == (320, 240, 5.0)
    assert s.meta.created == "2017-01-05T12:00:00"
    frames = list(s.frames())
    assert [f.index for f in frames] == list(range(30))
    assert [f.t_ns for f in frames] == [i * FRAME_NS for i in range(30)]
    for f, row in zip(frames, rows, strict=True):
        assert f.pad.x == pytest.approx(float(row[1]))
        assert Path(f.where).name == Path(row[0]).name
    # y is stick-down-positive in TensorKart, +y up in kartkit; b → B, rb → R
    assert frames[3].pad.y == -0.25
    assert frames[3].pad.buttons == {"b", "r"}
    assert frames[0].image().shape == (240, 320, 3)


def test_appended_recordings_get_unique_indexes_and_a_clock_gap(tmp_path: Path) -> None:
    s = synth.make_tensorkart(tmp_path / "tk", 8, width=64, height=48)
    rows = _rows(s)
    _write_rows(s, rows + rows[:3])  # a second recording: img_0 … img_2 again
    frames = list(TensorKartSession(s).frames())
    assert [f.index for f in frames] == list(range(11))
    steps = np.diff([f.t_ns for f in frames])
    assert list(steps) == [FRAME_NS] * 7 + [RESTART_GAP_NS] + [FRAME_NS] * 2
    assert Path(frames[8].where).name == "img_0.png"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (1, "nan", r"data\.csv:5: x='nan' is not a number in \[-1, 1\]"),
        (2, "1.5", r"data\.csv:5: y='1.5' is not a number in \[-1, 1\]"),
        (1, "left", r"data\.csv:5: x='left' is not a number"),
        (4, "2", r"data\.csv:5: button b='2' is not 0 or 1"),
        (0, "samples/x/..", r"data\.csv:5: image path 'samples/x/\.\.' escapes the session"),
    ],
)
def test_bad_rows_name_file_and_line(
    tensorkart_session: Path, field: int, value: str, message: str
) -> None:
    rows = _rows(tensorkart_session)
    rows[4][field] = value
    _write_rows(tensorkart_session, rows)
    with pytest.raises(SourceError, match=message):
        list(TensorKartSession(tensorkart_session).frames())


def test_short_row_and_symlink_escape(tensorkart_session: Path, tmp_path: Path) -> None:
    rows = _rows(tensorkart_session)
    _write_rows(tensorkart_session, [*rows[:2], rows[2][:4], *rows[3:]])
    with pytest.raises(SourceError, match=r"data\.csv:3: 4 fields, expected 6"):
        list(TensorKartSession(tensorkart_session).frames())
    _write_rows(tensorkart_session, rows)
    outside = tmp_path / "outside.png"
    outside.write_bytes((tensorkart_session / "img_6.png").read_bytes())
    (tensorkart_session / "img_6.png").unlink()
    (tensorkart_session / "img_6.png").symlink_to(outside)
    with pytest.raises(SourceError, match=r"data\.csv:7: image path .* escapes the session"):
        list(TensorKartSession(tensorkart_session).frames())


def test_reader_does_not_modify_the_recording(tensorkart_session: Path) -> None:
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tensorkart_session.iterdir()}
    s = TensorKartSession(tensorkart_session)
    for f in s.frames():
        f.image()
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tensorkart_session.iterdir()}
    assert before == after
    assert s.key == TensorKartSession(tensorkart_session).key


def test_key_covers_every_named_image(tensorkart_session: Path, tmp_path: Path) -> None:
    import shutil

    frame = tensorkart_session / "img_7.png"
    synth.retouch_png(frame, store=True)
    before, size = open_source(tensorkart_session).key, frame.stat().st_size
    copy = tmp_path / "elsewhere" / tensorkart_session.name
    shutil.copytree(tensorkart_session, copy)
    assert open_source(copy).key == before
    synth.retouch_png(copy / "img_7.png")
    assert (copy / "img_7.png").stat().st_size == size
    after = open_source(copy).key
    assert after != before and recording_of(after) == recording_of(before)
    (copy / "stray.txt").write_text("not named by data.csv")
    assert open_source(copy).key == after
