"""What a model predicts: the target layout shared by training, metrics and export.

``tensorkart`` is TensorKart's five outputs ``[x, y, a, b, r]`` (continuous,
softsign); ``class3`` is CTR-AI's one-hot left/straight/right (softmax); any
comma-separated subset of pad fields (``x,a``) is continuous too. The loader
produces the same layout from the same name, so this only adds what models
and metrics need to know about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from kartdata.errors import KartError
from kartdata.schema import BUTTONS, PAD_FIELDS, STEERING_CLASSES
from kartdata.targets import CLASS3, TENSORKART, TENSORKART_FIELDS

#: ``class3`` (:data:`~kartdata.targets.CLASS3`): classified; anything else regressed.
Kind = Literal["continuous", "class3"]
CONTINUOUS: Final = "continuous"


@dataclass(frozen=True, slots=True)
class TargetLayout:
    """Output names in order, and whether they are regressed or classified."""

    names: tuple[str, ...]
    kind: Kind
    #: How the loader was asked for these targets (``tensorkart``, ``class3``, ``x,a``).
    source: str

    @classmethod
    def parse(cls, targets: str | Sequence[str]) -> TargetLayout:
        if isinstance(targets, str):
            if targets == TENSORKART:
                return cls(TENSORKART_FIELDS, CONTINUOUS, TENSORKART)
            if targets == CLASS3:
                return cls(tuple(STEERING_CLASSES), CLASS3, CLASS3)
            names = tuple(t.strip() for t in targets.split(",") if t.strip())
        else:
            names = tuple(targets)
        unknown = [n for n in names if n not in PAD_FIELDS]
        if not names or unknown:
            raise KartError(
                f"targets {targets!r}: expected 'tensorkart', 'class3' or pad fields "
                f"from {', '.join(PAD_FIELDS)}"
            )
        return cls(names, CONTINUOUS, ",".join(names))

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def loader_targets(self) -> str | tuple[str, ...]:
        """The loader's ``TargetConfig.kind`` that produces this layout."""
        return self.source if self.source in (TENSORKART, CLASS3) else self.names

    @property
    def steering_index(self) -> int | None:
        """Column of the steering axis ``x`` (continuous layouts only)."""
        return self.names.index("x") if self.kind == CONTINUOUS and "x" in self.names else None

    @property
    def button_indices(self) -> dict[str, int]:
        """Columns of digital buttons (``r`` is the R trigger, as TensorKart's RB)."""
        if self.kind != CONTINUOUS:
            return {}
        return {n: i for i, n in enumerate(self.names) if n in BUTTONS}

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names), "source": self.source}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TargetLayout:
        return cls(tuple(obj["names"]), obj["kind"], obj.get("source", ",".join(obj["names"])))
