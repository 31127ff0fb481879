"""The report: a table per session, totals, the worst frames; or JSON. And the
exit code: 0 clean, 1 problems found, 2 input unusable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from kartdata.validate.analyse import SessionResult

CLEAN, PROBLEMS, UNUSABLE = 0, 1, 2
WORST = 10


def exit_code(results: Sequence[SessionResult], *, strict: bool = False) -> int:
    if any(r.unusable for r in results):
        return UNUSABLE
    if any(r.errors for r in results) or (strict and any(r.warnings for r in results)):
        return PROBLEMS
    return CLEAN


def worst_frames(
    results: Sequence[SessionResult], n: int = WORST
) -> list[tuple[str, int, str, float]]:
    """(session, frame, reason, score), surest first: unreadable and blank frames
    before desktop ones, desktop ones by how much of the frame is foreign."""
    rows = [
        (r.path, idx, reason, r.scores.get(idx, 1.0))
        for r in results
        for idx, reason in r.verdicts.items()
    ]
    rows.sort(key=lambda t: (-t[3], t[0], t[1]))
    return rows[:n]


def to_json(results: Sequence[SessionResult], *, strict: bool = False) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for r in results:
        totals.update(r.verdicts.values())
    return {
        "exit_code": exit_code(results, strict=strict),
        "sessions": [
            {
                "path": r.path,
                "layout": r.layout,
                "key": r.key,
                "frames": r.frames,
                "flagged": len(r.verdicts),
                "counts": r.counts,
                "steering": r.steering,
                "fps": None
                if r.rate is None
                else {"nominal": r.rate.nominal, "achieved": round(r.rate.achieved, 3)},
                "unusable": r.unusable,
                "errors": r.errors,
                "warnings": r.warnings,
                "issues": [i.to_json() for i in r.issues],
                "verdicts": {str(k): v for k, v in sorted(r.verdicts.items())},
            }
            for r in results
        ],
        "totals": {
            "sessions": len(results),
            "frames": sum(r.frames for r in results),
            "flagged": sum(len(r.verdicts) for r in results),
            "counts": dict(totals.most_common()),
            "errors": sum(r.errors for r in results),
            "warnings": sum(r.warnings for r in results),
        },
        "worst": [
            {"session": s, "frame": f, "reason": why, "score": round(sc, 3)}
            for s, f, why, sc in worst_frames(results)
        ],
    }


def to_text(
    results: Sequence[SessionResult], *, strict: bool = False, issues_shown: int = 12
) -> str:
    lines: list[str] = []
    for r in results:
        lines.append(f"== {r.path} ({r.layout})")
        if r.unusable:
            lines.append("   UNUSABLE")
        fps = ""
        if r.rate is not None and r.rate.nominal:
            fps = f"{r.rate.achieved:.1f}/{r.rate.nominal:g}"
        mix = " ".join(f"{k}={v}" for k, v in r.steering.items())
        rows = [
            ("frames", str(r.frames)),
            ("flagged", str(len(r.verdicts))),
            *((f"  {k}", str(v)) for k, v in r.counts.items()),
            ("fps achieved/nominal", fps or "-"),
            ("steering", mix),
            ("errors / warnings", f"{r.errors} / {r.warnings}"),
        ]
        width = max(len(k) for k, _ in rows)
        lines += [f"   {k:<{width}}  {v}" for k, v in rows]
        for i in r.issues[:issues_shown]:
            lines.append(f"   {i.severity:<7}  [{i.check}] {i.message}")
        if len(r.issues) > issues_shown:
            lines.append(f"   … {len(r.issues) - issues_shown} more (see --json)")
    totals: Counter[str] = Counter()
    for r in results:
        totals.update(r.verdicts.values())
    frames = sum(r.frames for r in results)
    flagged = sum(len(r.verdicts) for r in results)
    share = f" ({100 * flagged / frames:.1f} %)" if frames else ""
    lines.append(
        f"== totals: {len(results)} session(s), {frames} frames, {flagged} flagged{share}"
        + ("".join(f", {k} {v}" for k, v in totals.most_common()))
    )
    worst = worst_frames(results)
    if worst:
        lines.append("== worst frames")
        lines += [f"   {why:<10} {sc:5.2f}  {s} frame {f}" for s, f, why, sc in worst]
    code = exit_code(results, strict=strict)
    verdict = {CLEAN: "clean", PROBLEMS: "problems found", UNUSABLE: "input unusable"}[code]
    lines.append(f"== {verdict} (exit {code})")
    return "\n".join(lines)
