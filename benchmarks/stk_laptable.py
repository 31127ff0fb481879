"""The SuperTuxKart lap table: a clone of the human experts of the shipped ghost
replays, trained only through kartkit's shards and loader, driving trained and
held-out tracks, against the experts' times.

The recipe, each stage the project's own command or function:

1. demonstrations (kartplay.stk.demonstrate): the game plays each training
   replay for its first ``--seconds`` game seconds while kartkit records it,
   every frame labelled from the HUD clock; plus one ``--val-replay`` (a track
   neither trained nor evaluated) that only picks the best checkpoint;
2. ``kartdata shard`` of those sessions;
3. ``kartmodel train`` (PilotNet, targets x,a,b, ``--seed``), the validation
   split being the val replay's session, the best checkpoint by ``val_loss``
   (the default monitor, balanced steering accuracy, sat at chance, 0.333, in
   every epoch of the first run and so kept epoch 1, which never pressed the gas);
   with ``--turn``, also on recovery views (``AugmentConfig.turn``: views slid
   sideways, labelled to steer back, SuperTuxKart's camera-fixed regions kept);
4. ``kartmodel export``;
5. ``kartplay stk evaluate`` on the trained tracks and the held-out ones,
   pressing the game's rescue when the view stands still or the race stalls
   (``--no-rescue``: never), class models steering by ``--selection``.

Baseline, measured in the same run (``--variants``, default clone and
gas-only): the same evaluation of a model that always holds the gas and steers
straight (a real exported PilotNet whose output biases fix its answer), so the
clone's progress has a floor to beat beside the human's ceiling; and
``clone-gas-held``, the clone's steering with the gas always held, which
separates its steering from its pedals.

    .venv/bin/python benchmarks/stk_laptable.py --work /tmp/laptable \\
        [--train lighthouse:standard_intermediate_lighthouse,...] \\
        [--held-out xr591,abyss] [--seconds 70] [--epochs 15] [--seed 1] [--laps 1]

Stages whose output is already under ``--work`` are not run again (delete the
folder to start afresh), so a run cut short can be continued.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kartdata.augment import format_boxes
from kartmodel.untrained import export_untrained_pilotnet
from kartplay.policy import PolicyConfig
from kartplay.rescue import RescueConfig
from kartplay.stk.demonstrate import SESSION_TAG, DemoConfig, record_demonstration
from kartplay.stk.evaluate import EvaluateConfig, EvaluateReport, evaluate
from kartplay.stk.hud import CAMERA_FIXED
from kartplay.stk.keys import RESCUE_BUTTON
from kartplay.stk.replay import SHIPPED_REPLAY_DIR

TRAIN = "standard_intermediate_lighthouse,standard_supertux_fortmagma,standard_supertux_scotland"
VAL = "standard_supertux_snowmountain"
HELD_OUT = "xr591,abyss"
VARIANTS = {
    "clone": "the trained model as exported",
    "clone-gas-held": "the trained model's steering, the gas always held (PolicyConfig.hold)",
    "gas-only": "baseline: the gas held, steering straight, whatever it sees",
}


def _cli(*argv: str) -> None:
    t0 = time.monotonic()
    print("$", " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", *argv], check=True)
    print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)


def demonstrations(work: Path, replays: list[str], seconds: float | None) -> list[Path]:
    """A session per replay, of its first ``seconds`` game seconds (None: the whole race)."""
    out = []
    for name in replays:
        session = work / "sessions" / name
        if not (session / "session.json").exists():
            t0 = time.monotonic()
            r = record_demonstration(
                DemoConfig(
                    SHIPPED_REPLAY_DIR / f"{name}.replay",
                    session,
                    seconds=seconds,
                    image_format="jpg",
                )
            )
            print(
                f"demonstration {name}: {r.frames} frames, {r.timed_share:.1%} of racing frames "
                f"timed, game {r.first_time_s:.1f}-{r.last_time_s:.1f} s, "
                f"wall {time.monotonic() - t0:.0f} s",
                flush=True,
            )
        out.append(session)
    return out


def gas_only_model(work: Path) -> Path:
    """The baseline: holds the gas, steers straight, whatever it sees."""
    path = work / "baseline" / "export" / "keras"
    if path.exists():
        return path
    return export_untrained_pilotnet(work / "baseline", seed=0, bias=(0.0, 100.0, -100.0))


def table(name: str, report: EvaluateReport, trained: set[str]) -> str:
    lines = [
        f"### {name}",
        "",
        "| track | trained on | finished | race s | expert s (replay) | ratio | progress | "
        "expert s to the same progress | rescues |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.runs:
        reach = f"{r.expert_to_progress_s:.1f}" if r.expert_to_progress_s is not None else "-"
        lines.append(
            f"| {r.track} | {'yes' if r.track in trained else 'no (held out)'} | "
            f"{'yes' if r.finished else 'no: ' + r.ended} | {r.race_time_s:.1f} | "
            f"{r.expert_time_s:.1f} ({r.expert_replay}, {r.compare}) | "
            f"{f'{r.ratio:.2f}' if r.ratio is not None else '-'} | "
            f"{100 * r.progress_frac:.1f} % ({r.laps_done} laps + {r.distance_m:.0f} m) | {reach} | "
            f"{r.rescues} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--train", default=TRAIN, help="Replays to learn from (names).")
    p.add_argument("--val-replay", default=VAL, help="Replay whose session picks the checkpoint.")
    p.add_argument("--held-out", default=HELD_OUT, help="Tracks never trained on.")
    p.add_argument(
        "--seconds", type=float, default=70.0, help="Game seconds of each training replay (0: all)."
    )
    p.add_argument(
        "--val-seconds", type=float, default=70.0, help="Game seconds of the val replay (0: all)."
    )
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--model", default="pilotnet", help="pilotnet (x,a,b) or categorical (class3).")
    p.add_argument(
        "--smooth", type=int, default=1, help="Frames averaged into the steering target."
    )
    p.add_argument("--balance", default=None, help="'uniform': each steering class equally often.")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--laps", type=int, default=1)
    p.add_argument("--limit-factor", type=float, default=3.0)
    p.add_argument("--variants", default="clone,gas-only", help=f"Of {', '.join(VARIANTS)}.")
    p.add_argument(
        "--no-rescue", action="store_true", help="Never press the rescue (default: when stuck)."
    )
    p.add_argument(
        "--selection", default="sample", help="Class models' steering: sample, argmax, expected."
    )
    p.add_argument("--out-suffix", default="", help="Appended to each evaluate-<variant> dir.")
    p.add_argument("--tracks", default=None, help="Evaluate only these tracks (default: all).")
    p.add_argument(
        "--turn", type=float, default=0.0,
        help="Train on recovery views: slides of up to this share of the width (0: none).",
    )  # fmt: skip
    p.add_argument("--turn-steer", type=float, default=1.0, help="Label change at a whole --turn.")
    a = p.parse_args()
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    train = [n for n in a.train.split(",") if n]
    held_out = [t for t in a.held_out.split(",") if t]
    print(f"machine: {platform.node()}, {platform.machine()}, python {platform.python_version()}")
    t0 = time.monotonic()

    variants = [v for v in a.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {', '.join(sorted(unknown))}; have {', '.join(VARIANTS)}")
    # the baseline alone needs no demonstrations: it can run beside a training
    clone = any(v != "gas-only" for v in variants)
    sessions = [
        *demonstrations(work, train if clone else [], a.seconds or None),
        *demonstrations(work, [a.val_replay] if clone else [], a.val_seconds or None),
    ]
    dataset = work / "dataset"
    if clone and not (dataset / "manifest.json").exists():
        _cli("kartdata.cli", "shard", *map(str, sessions), "--out", str(dataset))
    run = work / "run"
    model = run / "export" / "keras"
    if clone and not model.exists():
        targets = ("--targets", "x,a,b") if a.model == "pilotnet" else ()
        balance = ("--balance", a.balance) if a.balance else ()
        if a.turn:
            balance += ("--turn", str(a.turn), "--turn-steer", str(a.turn_steer),
                        "--turn-keep", format_boxes(CAMERA_FIXED))  # fmt: skip
        _cli("kartmodel.cli", "train", str(dataset), "--out", str(run), "--model", a.model,
             *targets, *balance, "--smooth", str(a.smooth), "--epochs", str(a.epochs),
             "--seed", str(a.seed), "--val-sessions", a.val_replay, "--monitor", "val_loss",
             "--session-tags", SESSION_TAG)  # fmt: skip
        # the last epoch: the val replay is a track never trained on, and its
        # loss moves with which unseen views happen to look familiar
        _cli("kartmodel.cli", "export", str(run), "--checkpoint", "last")

    from kartplay.stk.replay import read_replay

    trained = {read_replay(SHIPPED_REPLAY_DIR / f"{n}.replay").header.track for n in train}
    tracks = (*sorted(trained), *held_out)
    if a.tracks:
        tracks = tuple(t for t in a.tracks.split(",") if t)
    saved = work / f"laptable{'' if clone else '-baseline'}.json"
    results = json.loads(saved.read_text())["results"] if saved.exists() else {}
    for name in variants:
        path = gas_only_model(work) if name == "gas-only" else model
        hold = ("a",) if name == "clone-gas-held" else ()
        policy = PolicyConfig(selection=a.selection, hold=hold, seed=a.seed)
        t1 = time.monotonic()
        report = evaluate(
            EvaluateConfig(
                str(path), tracks, laps=a.laps, limit_factor=a.limit_factor,
                out=work / f"evaluate-{name}{a.out_suffix}", policy=policy,
                rescue=RescueConfig(None if a.no_rescue else RESCUE_BUTTON),
            )
        )  # fmt: skip
        print(table(f"{name}: {VARIANTS[name]}", report, trained), flush=True)
        print(f"  ({time.monotonic() - t1:.0f} s)", flush=True)
        # a run on some --tracks replaces those tracks' rows, not the table
        rows = {r["track"]: r for r in results.get(f"{name}{a.out_suffix}", [])}
        rows.update((r.track, asdict(r)) for r in report.runs)
        results[f"{name}{a.out_suffix}"] = list(rows.values())
        meta = {"train": train, "val": a.val_replay, "held_out": held_out, "seed": a.seed,
                "epochs": a.epochs, "model": a.model, "smooth": a.smooth, "balance": a.balance,
                "seconds": a.seconds or "whole race",
                "val_seconds": a.val_seconds or "whole race", "laps": a.laps,
                "limit_factor": a.limit_factor, "rescue": not a.no_rescue,
                "selection": a.selection, "turn": a.turn, "turn_steer": a.turn_steer}  # fmt: skip
        saved.write_text(json.dumps({**meta, "results": results}, indent=1) + "\n")
    baseline = results.get(f"gas-only{a.out_suffix}")
    alone = work / "laptable-baseline.json"  # a baseline run on its own (see above)
    if baseline is None and alone.exists():
        baseline = json.loads(alone.read_text())["results"].get(f"gas-only{a.out_suffix}")
    base = {r["track"]: r["progress_frac"] for r in baseline or []}
    for name in ("clone", "clone-gas-held"):
        clone = {r["track"]: r["progress_frac"] for r in results.get(f"{name}{a.out_suffix}", [])}
        for t in tracks:
            if t in clone and t in base:
                ratio = clone[t] / base[t] if base[t] > 0 else float("nan")
                print(f"progress {name} / gas-only on {t}: {ratio:.2f}")
    print(f"total wall {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
