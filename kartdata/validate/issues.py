"""What a check finds: one :class:`Issue` per problem, with where it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Issue:
    #: The check that found it: structure, images, controls, timing, class-mix.
    check: str
    severity: Severity
    message: str
    #: The frame it concerns, if one.
    frame: int | None = None
    #: The line of the controls table it concerns, if one.
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def error(check: str, message: str, *, frame: int | None = None, line: int | None = None) -> Issue:
    return Issue(check, "error", message, frame, line)


def warning(
    check: str, message: str, *, frame: int | None = None, line: int | None = None
) -> Issue:
    return Issue(check, "warning", message, frame, line)
