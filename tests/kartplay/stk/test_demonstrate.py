"""A real demonstration: the game plays the first seconds of a shipped replay,
kartkit records it, and every frame that carries a game time gets the replay's
steering at that time, checked against the replay file's own lines.

Needs the game (CI installs it) and about a minute of the machine.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from kartdata.sources.native import NativeSession
from kartplay.stk.demonstrate import (
    GAME_LOG_FILE,
    LABELS_FILE,
    SESSION_TAG,
    UNTIMED_TAG,
    DemoConfig,
    DemonstrationError,
    race_replays,
    record_demonstration,
)
from kartplay.stk.racelog import frames_in
from kartplay.stk.replay import SHIPPED_REPLAY_DIR

REPLAY = SHIPPED_REPLAY_DIR / "standard_novice_sandtrack.replay"
SECONDS = 3.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("demo") / "session"
    result = record_demonstration(DemoConfig(replay=REPLAY, out=out, seconds=SECONDS))
    return result, out


def _file_samples(path: Path) -> dict[int, list[str]]:
    """Line number → fields, straight from the replay file."""
    return {n: text.split() for n, text in enumerate(path.read_text().splitlines(), start=1)}


def test_timed_frames_carry_the_replay_steering_at_their_time(demo) -> None:  # type: ignore[no-untyped-def]
    result, out = demo
    session = NativeSession(out)
    frames = list(session.frames())
    with (out / LABELS_FILE).open() as f:
        labels = list(csv.DictReader(f))
    assert len(frames) == len(labels) == result.frames
    lines = _file_samples(REPLAY)
    sample_lines = sorted(n for n, fields in lines.items() if len(fields) == 26)
    timed = [(fr, lab) for fr, lab in zip(frames, labels, strict=True) if lab["game_time_s"]]
    assert len(timed) == result.timed >= 10
    previous = -1.0
    for frame, label in timed:
        t = float(label["game_time_s"])
        assert t >= previous  # the race clock never runs back
        previous = t
        line = int(label["replay_line"])
        fields = lines[line]
        # The label's sample is the one in effect at t: at or before it, and
        # the file's next sample is after it.
        assert float(fields[0]) <= t or line == sample_lines[0]
        nxt = sample_lines.index(line) + 1
        if nxt < len(sample_lines):
            assert float(lines[sample_lines[nxt]][0]) > t
        assert frame.pad.x == pytest.approx(float(fields[9]), abs=1e-6)
        assert UNTIMED_TAG not in frame.tags
    assert previous >= SECONDS


def test_frames_without_a_clock_are_marked_not_labelled(demo) -> None:  # type: ignore[no-untyped-def]
    result, out = demo
    frames = list(NativeSession(out).frames())
    with (out / LABELS_FILE).open() as f:
        labels = list(csv.DictReader(f))
    untimed = [fr for fr, lab in zip(frames, labels, strict=True) if not lab["game_time_s"]]
    # The track intro and Ready / Set come before the first timed frame.
    assert labels[0]["game_time_s"] == ""
    assert untimed
    for fr in untimed:
        assert UNTIMED_TAG in fr.tags
        assert fr.pad.x == 0.0 and not fr.pad.buttons
    assert result.timed_share >= 0.95


def test_read_clock_is_a_frame_time_the_game_logged(demo) -> None:  # type: ignore[no-untyped-def]
    """Independent of the HUD: the game logs every frame's world time; each
    clock read off a recorded frame is one of them (to the HUD's millisecond)."""
    _, out = demo
    with (out / GAME_LOG_FILE).open("rb") as log:
        logged = np.array([f.time_s for f in frames_in(log)])
    with (out / LABELS_FILE).open() as f:
        read = np.array([float(r["game_time_s"]) for r in csv.DictReader(f) if r["game_time_s"]])
    nearest = np.abs(read[:, None] - logged[None, :]).min(axis=1)
    assert nearest.max() <= 0.0006


def test_session_is_tagged_for_the_loader(demo) -> None:  # type: ignore[no-untyped-def]
    _, out = demo
    meta = NativeSession(out).meta
    assert SESSION_TAG in meta.tags
    assert (meta.game, meta.track) == ("supertuxkart", "sandtrack")
    assert meta.extra["replay"] == "standard_novice_sandtrack"
    assert (meta.extra["difficulty"], meta.extra["laps"]) == ("novice", 3)
    assert (meta.width, meta.height) == (400, 300)


def test_egg_hunt_replay_is_refused(tmp_path: Path) -> None:
    cfg = DemoConfig(
        replay=SHIPPED_REPLAY_DIR / "standard_egghunt_expert_minigolf.replay", out=tmp_path / "s"
    )
    with pytest.raises(DemonstrationError, match="egg-hunt replay"):
        record_demonstration(cfg)


def test_the_race_replays_are_the_28_time_trials() -> None:
    names = [p.stem for p in race_replays()]
    assert len(names) == 28
    assert "standard_egghunt_expert_minigolf" not in names
    assert REPLAY.stem in names
