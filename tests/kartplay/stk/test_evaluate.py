"""``kartplay stk evaluate`` on the real game with a real exported model.

The model is a real exported PilotNet whose answer is fixed by its output
layer (gas, no steering, no brake), so the run is short and its outcome known
in kind: the kart rolls forward and does not finish within a limit of a few
race seconds. What the table says is checked against what the game itself
logged (its per-frame race log) and against the replay file's own text.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from exported_models import export_pilotnet
from PIL import Image

from kartplay.stk.evaluate import STALL_S, EvaluateConfig, EvaluateReport, Stall, evaluate
from kartplay.stk.racelog import RaceFrame, frames_in
from kartplay.stk.replay import SHIPPED_REPLAY_DIR

KARTPLAY = [sys.executable, "-m", "kartplay.cli"]
#: lighthouse's expert (3 laps in 93 s) gives 31 s a lap: a limit of about 4.7 race s.
LIMIT_FACTOR = 0.15


@pytest.fixture(scope="module")
def gas_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported PilotNet (outputs x,a,b): zero weights, biases giving
    x = 0, a = 0.99 (gas), b = -0.99; what it sees still goes through capture,
    the shared preprocessing, the model and the policy."""
    return export_pilotnet(
        tmp_path_factory.mktemp("evaluate") / "run", seed=7, bias=(0.0, 100.0, -100.0)
    )


def _children() -> list[str]:
    """Names of this process's live child processes (from /proc)."""
    me, names = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        fields = rest.split()
        if int(fields[1]) == me and fields[0] != "Z":
            names.append(name)
    return names


@pytest.fixture(scope="module")
def report(gas_only: Path, tmp_path_factory: pytest.TempPathFactory) -> EvaluateReport:
    out = tmp_path_factory.mktemp("evaluate-out")
    config = EvaluateConfig(
        str(gas_only), ("lighthouse",), laps=1, limit_factor=LIMIT_FACTOR, out=out
    )
    return evaluate(config)


def _min_time(replay: str) -> float:
    text = (SHIPPED_REPLAY_DIR / f"{replay}.replay").read_text()
    m = re.search(r"^min_time: *([0-9.]+)$", text, re.M)
    assert m, replay
    return float(m.group(1))


def test_a_run_that_does_not_finish_reports_how_far_it_got_from_the_race_log(
    report: EvaluateReport,
) -> None:
    out = report.config.out
    rows = json.loads((out / "evaluate.json").read_text())["runs"]
    assert [r["track"] for r in rows] == ["lighthouse"]
    row = rows[0]
    # the expert: the one forward time trial of lighthouse the game ships, 3 laps,
    # compared per lap with the 1 asked
    assert row["expert_replay"] == "standard_intermediate_lighthouse"
    assert row["expert_laps"] == 3
    assert row["expert_min_time_s"] == _min_time("standard_intermediate_lighthouse")
    assert row["compare"] == "per lap"
    assert row["expert_time_s"] == pytest.approx(row["expert_min_time_s"] / 3)
    assert row["limit_s"] == pytest.approx(LIMIT_FACTOR * row["expert_time_s"])
    # the clone drives the expert's kart, as the game's own log says
    kart = re.search(r"^kart: (\S+)", (SHIPPED_REPLAY_DIR / f"{row['expert_replay']}.replay")
                     .read_text(), re.M)  # fmt: skip
    assert kart and row["kart"] == kart.group(1) != "tux"
    assert f"You chose to use kart '{row['kart']}'" in (out / "lighthouse.log").read_text(
        errors="replace"
    )

    assert row["finished"] is False and row["ratio"] is None
    assert row["ended"] == "limit"
    # The game's own log: the first frame at or past the limit is where the row stops.
    with (out / "lighthouse.log").open("rb") as f:
        frames = [fr for fr in frames_in(f) if fr.time_s > 0]
    at_limit = next(fr for fr in frames if fr.time_s >= row["limit_s"])
    assert row["race_time_s"] == at_limit.time_s
    assert row["distance_m"] == at_limit.distance_m
    assert row["distance_m"] > 5.0  # the gas was held: the kart moved
    assert row["laps_done"] == 0 and row["progress_m"] == row["distance_m"]
    # the expert got as far sooner or later, but at a real time within its race
    assert 0 < row["expert_to_progress_s"] < row["expert_min_time_s"]
    assert row["policy_fps"] > 0

    # the CSV has the same row
    with (out / "evaluate.csv").open() as f:
        (csv_row,) = list(csv.DictReader(f))
    assert csv_row["track"] == "lighthouse" and csv_row["finished"] == "False"
    assert float(csv_row["distance_m"]) == row["distance_m"]


def test_the_gif_and_plot_are_images_and_no_game_or_xvfb_is_left(report: EvaluateReport) -> None:
    out = report.config.out
    assert report.gif == out / "lighthouse.gif"
    with Image.open(report.gif) as gif:
        assert gif.format == "GIF" and gif.size == (320, 240)
        assert gif.n_frames >= 3
        first = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    assert np.abs(first.astype(int) - last).mean() > 2  # the view moved: a real run
    with Image.open(out / "evaluate.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 400
        plot.load()
    left = [n for n in _children() if n in ("Xvfb", "supertuxkart")]
    assert left == []


@pytest.mark.parametrize(
    ("track", "says"),
    [
        ("nosuchtrack", "track 'nosuchtrack' is not a race track"),
        ("lighthouse,nosuchtrack", "track 'nosuchtrack' is not a race track"),
        ("zengarden", "track 'zengarden' has no forward time-trial replay"),
        ("lighthouse --kart nosuchkart", "kart 'nosuchkart' is not in"),
    ],
)
def test_a_bad_track_or_kart_is_a_one_line_error_before_any_game_starts(
    gas_only: Path, tmp_path: Path, track: str, says: str
) -> None:
    proc = subprocess.run(
        [
            *KARTPLAY,
            "stk",
            "evaluate",
            str(gas_only),
            "--tracks",
            *track.split(),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr
    assert not (tmp_path / "evaluate.json").exists()


def test_the_expert_is_the_fastest_forward_time_trial_of_the_track() -> None:
    from kartplay.stk.evaluate import expert_for

    # cocoa_temple ships four forward replays (novice … supertux) and a reverse one
    # faster per lap than all but supertux's
    e = expert_for("cocoa_temple")
    assert e.replay == "challenge_cocoa_temple_supertux"
    assert e.min_time_s == _min_time("challenge_cocoa_temple_supertux")
    assert e.laps == 3 and e.difficulty == 3
    assert e.time_for(3) == e.min_time_s and e.time_for(1) == pytest.approx(e.min_time_s / 3)
    # three laps of its lap length is where it is at its finish, and it got there then
    assert e.progress_m[-1] >= 3 * e.lap_length_m * 0.999
    assert e.time_to(3 * e.lap_length_m) == pytest.approx(e.min_time_s, abs=0.1)
    assert e.time_to(0.0) is None and e.time_to(10 * e.lap_length_m) is None
    # progress starts at 0 and only grows, whatever the replay's placeholder before
    # the start line (xr591's is -814 m on a 1241 m lap) or its one-sample glitches
    for track in ("cocoa_temple", "xr591", "abyss"):
        x = expert_for(track)
        assert x.progress_m[0] == 0.0 and np.all(np.diff(x.progress_m) >= 0)
        assert x.time_to(1.0) < 2.0
    # sandtrack's reverse supertux replay (104 s) is not a forward time trial: novice's it is
    assert expert_for("sandtrack").replay == "standard_novice_sandtrack"


def _frames(points: list[tuple[float, float]]) -> list[RaceFrame]:
    return [RaceFrame(t, d, 0.05, 0.0) for t, d in points]


def test_a_race_stalls_after_stall_s_without_stall_m_of_progress() -> None:
    stall = Stall(lap_length_m=800.0)
    # 10 m/s for 10 s: never stalled
    assert not any(stall.update(f) for f in _frames([(0.2 * i, 2.0 * i) for i in range(50)]))
    # then stuck at 98 m, creeping 1 m in all: stalled once STALL_S has passed
    stuck = _frames([(10.0 + 0.2 * i, 98.0 + 0.01 * i) for i in range(100)])
    fired = [f.time_s for f in stuck if stall.update(f)]
    assert fired, "a kart stuck for 20 s stalls"
    assert STALL_S - 0.5 <= fired[0] - 9.8 <= STALL_S + 0.3
    assert all(b - a >= STALL_S - 0.01 for a, b in itertools.pairwise(fired))  # one per STALL_S


def test_crossing_the_line_is_progress_and_driving_backwards_is_not() -> None:
    stall = Stall(lap_length_m=800.0)
    # over the line: 790 m → 5 m is 15 m of progress, not 785 m back
    line = _frames([(0.2 * i, (780.0 + 3.0 * i) % 800.0) for i in range(60)])
    assert not any(stall.update(f) for f in line)
    back = _frames([(12.0 + 0.2 * i, 150.0 - 2.0 * i) for i in range(40)])
    assert any(stall.update(f) for f in back)  # the wrong way: rescued
