"""validate on real generated sessions with injected problems of every kind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kartdata import synth
from kartdata.schema import CONTROLS_FILE, frame_filename
from kartdata.sources import open_source
from kartdata.sources.native import encode_image
from kartdata.validate import ValidateConfig, analyse, frame_verdicts
from kartdata.validate import verdicts as vstore

W, H = 160, 120


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "cache"))


def _session(tmp_path: Path, name: str = "s", n: int = 60, seed: int = 0) -> Path:
    return synth.make_native(tmp_path / name, n, width=W, height=H, seed=seed)


def _put(session: Path, index: int, image: np.ndarray) -> None:
    (session / frame_filename(index)).write_bytes(encode_image(image))


def _edit_rows(session: Path, fn) -> None:  # type: ignore[no-untyped-def]
    table = session / CONTROLS_FILE
    lines = table.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    rows = [ln.rstrip("\n").split(",") for ln in lines[1:]]
    fn(header, rows)
    table.write_text(lines[0] + "".join(",".join(r) + "\n" for r in rows))


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kartdata.cli", "validate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_clean_synthetic_sessions_have_no_verdicts(tmp_path: Path) -> None:
    paths = [_session(tmp_path, f"s{i}", seed=i) for i in range(2)]
    results = analyse([open_source(p) for p in paths], ValidateConfig(workers=1))
    for r in results:
        assert r.verdicts == {}
        assert r.errors == 0
    assert frame_verdicts(open_source(paths[0])) == {}


def test_each_image_problem_is_found(tmp_path: Path) -> None:
    s = _session(tmp_path)
    _put(s, 3, np.zeros((H, W, 3), np.uint8))  # black
    _put(s, 5, np.full((H, W, 3), 128, np.uint8))  # blank
    frozen = synth.render(0.1, 10, W, H)
    for i in range(10, 14):  # the image of frame 10 held for 3 more frames
        _put(s, i, frozen)
    _put(s, 20, synth.render(0.1, 20, W, H))
    _put(s, 21, synth.render(0.1, 20, W, H))  # one repeat is not frozen
    held = synth.render(0.1, 50, W, H)
    for i in range(50, 54):  # held again, with an on-screen counter still ticking
        near = held.copy()
        near[2:6, 2 + 2 * (i - 50) : 4 + 2 * (i - 50)] = 255
        _put(s, i, near)
    img = s / frame_filename(30)
    img.write_bytes(img.read_bytes()[: len(img.read_bytes()) // 2])  # truncated
    (s / frame_filename(31)).unlink()  # missing
    _put(s, 32, synth.render(0.0, 32, W // 2, H // 2))  # wrong size
    (s / frame_filename(40)).write_bytes(b"not an image at all")  # unreadable
    before = _digest(s)
    for workers in (1, 2):
        (r,) = analyse([open_source(s)], ValidateConfig(workers=workers))
        assert r.verdicts == {
            3: "black",
            5: "blank",
            11: "frozen",
            12: "frozen",
            13: "frozen",
            30: "corrupt",
            31: "missing",
            32: "wrong-size",
            40: "corrupt",
            51: "frozen",
            52: "frozen",
            53: "frozen",
        }
        msgs = [i.message for i in r.issues]
        assert any("00000030.png: frame 30: corrupt or truncated" in m for m in msgs)
        assert any("00000031.png: frame 31: image file is missing" in m for m in msgs)
    assert _digest(s) == before  # the recording is never written to


def test_structure_controls_and_timing(tmp_path: Path) -> None:
    s = _session(tmp_path)

    def edit(header: list[str], rows: list[list[str]]) -> None:
        rows[4][header.index("x")] = "nan"  # line 6
        rows[7][header.index("y")] = "1.5"  # line 9
        rows[12][header.index("t_ns")] = rows[11][header.index("t_ns")]  # not increasing
        for r in rows[30:]:  # a 2 s gap before frame 30
            r[header.index("t_ns")] = str(int(r[header.index("t_ns")]) + 2_000_000_000)

    _edit_rows(s, edit)
    (s / "frames" / "99999999.png").write_bytes(encode_image(np.zeros((H, W, 3), np.uint8)))
    (r,) = analyse([open_source(s)], ValidateConfig(workers=1))
    by_line = {i.line: i for i in r.issues if i.line is not None}
    assert "axis x='nan'" in by_line[6].message and by_line[6].message.startswith(str(s))
    assert "axis y='1.5'" in by_line[9].message
    timing = [i for i in r.issues if i.check == "timing"]
    assert any(i.frame == 12 and "does not increase" in i.message for i in timing)
    assert any(i.frame == 30 and "gap" in i.message for i in timing)
    assert any("referenced by no row: frames/99999999.png" in i.message for i in r.issues)
    assert r.frames == 58  # every good row is still checked
    assert r.verdicts == {}


def test_stuck_axis_no_turning_and_class_mix(tmp_path: Path) -> None:
    s = _session(tmp_path)
    _edit_rows(s, lambda h, rows: [r.__setitem__(h.index("x"), "0.05") for r in rows])
    (r,) = analyse([open_source(s)], ValidateConfig(workers=1))
    msgs = " | ".join(i.message for i in r.issues if i.severity == "warning")
    assert "axis x stuck at +0.050" in msgs
    assert "no turning at all" in msgs
    assert "straight dominates" in msgs
    assert r.steering == {"left": 0, "straight": 60, "right": 0}
    (clean,) = analyse([open_source(_session(tmp_path, "t", n=200))], ValidateConfig(workers=1))
    assert not [i for i in clean.issues if i.check in ("controls", "class-mix")]


def test_frame_verdicts_are_stored_outside_the_source_and_reused(tmp_path: Path) -> None:
    s = _session(tmp_path)
    _put(s, 7, np.zeros((H, W, 3), np.uint8))
    before = _digest(s)
    src = open_source(s)
    assert frame_verdicts(src) == {7: "black"}
    stored = vstore.store_path(src.key)
    assert stored.parent == tmp_path / "cache" / "verdicts" and stored.exists()
    obj = json.loads(stored.read_text())
    assert obj["verdicts"] == {"7": "black"} and obj["counts"] == {"black": 1}
    # current stored verdicts are used as they are, without decoding again
    obj["verdicts"] = {"7": "black", "8": "desktop"}
    stored.write_text(json.dumps(obj))
    assert frame_verdicts(open_source(s)) == {7: "black", 8: "desktop"}
    # a changed recording has a new key, so its verdicts are computed afresh
    _edit_rows(s, lambda h, rows: rows.pop())
    assert frame_verdicts(open_source(s)) == {7: "black"}
    assert _digest(s) != before and not any(p.suffix == ".json" for p in (s / "frames").iterdir())
    with pytest.raises(Exception, match="inside the recording"):
        vstore.save(str(s), "k", {}, frames=1, config=ValidateConfig(), store=s / "v")


def test_cli_exit_codes_json_gallery(tmp_path: Path) -> None:
    env = {**os.environ, "KARTKIT_CACHE": str(tmp_path / "cache")}
    clean = _session(tmp_path, "clean", n=200)
    p = _cli(str(clean), "--workers", "1", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "clean (exit 0)" in p.stdout
    bad = _session(tmp_path, "bad", n=200, seed=3)
    _put(bad, 9, np.zeros((H, W, 3), np.uint8))
    gallery = tmp_path / "g" / "sheet.png"
    p = _cli(str(bad), "--json", "--gallery", str(gallery), env=env)
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    assert rep["exit_code"] == 1 and rep["sessions"][0]["verdicts"] == {"9": "black"}
    assert rep["worst"][0] == {"session": str(bad), "frame": 9, "reason": "black", "score": 1.0}
    from PIL import Image

    with Image.open(gallery) as im:
        assert im.size[0] > 0 and np.asarray(im)[:120, :160].max() < 40  # the black tile
    # --strict: a warning (class mix) fails
    stuck = _session(tmp_path, "stuck")
    _edit_rows(stuck, lambda h, rows: [r.__setitem__(h.index("x"), "0.0") for r in rows])
    assert _cli(str(stuck), env=env).returncode == 0
    assert _cli(str(stuck), "--strict", env=env).returncode == 1


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing-session-json", "{s}/data.csv: no rows"),
        ("bad-json", "{s}/session.json: not valid JSON (Expecting property name"),
        ("bad-header", "{s}/controls.csv:1: header lacks column(s) x, y, "),
        ("no-path", "{s}: no such file or directory"),
    ],
)
def test_unusable_input_is_one_line_and_exit_2(tmp_path: Path, breakage: str, message: str) -> None:
    env = {**os.environ, "KARTKIT_CACHE": str(tmp_path / "cache")}
    s = _session(tmp_path, n=10)
    if breakage == "missing-session-json":
        (s / "session.json").unlink()
        (s / "data.csv").write_text("")  # still looks like a recording dir to discover
    elif breakage == "bad-json":
        (s / "session.json").write_text("{not json")
    elif breakage == "bad-header":
        (s / CONTROLS_FILE).write_text("frame,t_ns\n0,0\n")
    else:
        s = tmp_path / "nowhere"
    p = _cli(str(s), env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    expected = message.format(s=s)
    if breakage == "no-path":
        # nothing to report on: the one line goes to stderr, and nothing else does
        assert p.stderr == f"error: {expected}\n" and p.stdout == ""
    else:
        # the report names the one error, on one line, and says why the exit is 2
        errors = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().startswith("error ")]
        assert len(errors) == 1, p.stdout
        assert errors[0].startswith(f"error    [structure] {expected}"), errors[0]
        assert p.stdout.rstrip().endswith("== input unusable (exit 2)") and p.stderr == ""
