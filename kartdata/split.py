"""Train/validation splits by session.

A split never cuts a session in two: neighbouring frames are near-identical, so
a per-frame split would leak validation frames into training. Membership is a
function of the session keys (a salted hash against a fraction, or explicit
lists), so the same dataset splits the same way on every machine and every run,
and a session added later does not move the others — except where the hash
put every session on one side: then the one nearest the cut crosses it, so
that both sides have a session, and goes back once the hash fills that side.

Users name sessions by what they know: a key, a unique key prefix, or the
recording's name (the session directory, or a recording file's name or stem).
Names reach :func:`assign` as an alias map built from the manifest
(:func:`recording_aliases`), so ``assign`` stays a pure function of its inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from kartdata.errors import DatasetError
from kartdata.schema import TAG_SEPARATOR

Split = Literal["train", "val", "all"]
SPLITS: tuple[str, ...] = ("train", "val", "all")
_ALIASES = {"validation": "val", "valid": "val", "training": "train"}


@dataclass(frozen=True)
class SplitConfig:
    """How sessions are assigned to ``train`` and ``val``.

    With neither list given, a session is in ``val`` when the salted hash of
    its key falls below ``val_fraction``; if that leaves either side empty
    (and there are two sessions or more, and the fraction is not 0 or 1), the
    session with the hash nearest the cut moves to it. With ``val_sessions`` given, exactly
    those are in ``val`` and ``train`` is ``train_sessions`` (or every other
    session). Sessions may be named by key, by the recording's name (with the
    aliases of :func:`recording_aliases`) or by a unique key prefix.
    """

    val_fraction: float = 0.1
    salt: str = ""
    val_sessions: tuple[str, ...] | None = None
    train_sessions: tuple[str, ...] | None = None
    #: Only sessions whose ``session.json`` carries every one of these tags take
    #: part (e.g. ``("stk-replay",)`` for SuperTuxKart's expert demonstrations);
    #: the others are in no split. Empty: every session.
    session_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction <= 1.0:
            raise DatasetError(f"val_fraction {self.val_fraction} is not in [0, 1]")
        if any(not tag or TAG_SEPARATOR in tag for tag in self.session_tags):
            raise DatasetError(
                f"session tags {self.session_tags} must be non-empty and hold no ';'"
            )

    def selects(self, tags: Iterable[str]) -> bool:
        """Whether a session with ``tags`` takes part in the split."""
        return set(self.session_tags) <= set(tags)


def normalize_split(split: str) -> str:
    name = _ALIASES.get(split, split)
    if name not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    return name


def hash_fraction(key: str, salt: str = "") -> float:
    """A stable number in [0, 1) for a session key (not Python's salted hash)."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def recording_name(source: str) -> str:
    """A readable name for a session: the last part of where it was read from
    (``/data/rec/s3`` → ``s3``; ``/data/ctr/run_07.npy`` → ``run_07.npy``)."""
    return PurePosixPath(str(source).rstrip("/")).name or str(source)


def recording_aliases(sessions: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """Recording name → the session keys recorded under it, from a manifest's
    sessions (anything with ``key`` and ``source``). A file's stem names it too
    (``run_07`` as well as ``run_07.npy``). A name with several keys (two
    recordings in different folders with one name) is ambiguous; naming it
    in a split is an error, never a guess."""
    out: dict[str, list[str]] = {}
    for s in sessions:
        name = recording_name(s.source)
        for alias in dict.fromkeys((name, PurePosixPath(name).stem)):
            if alias and s.key not in out.setdefault(alias, []):
                out[alias].append(s.key)
    return {k: tuple(v) for k, v in out.items()}


def assign(
    keys: Iterable[str],
    config: SplitConfig = SplitConfig(),
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, str]:
    """Session key → ``train``, ``val`` or ``unused`` (only with explicit lists
    that leave a session out of both). ``aliases`` maps recording names to
    keys (:func:`recording_aliases`) so the lists may name recordings."""
    keys = list(keys)
    if config.val_sessions is None and config.train_sessions is None:
        h = {k: hash_fraction(k, config.salt) for k in keys}
        table = {k: "val" if h[k] < config.val_fraction else "train" for k in keys}
        # A few sessions often hash all to one side (5 at 0.1: more than half
        # the time), and training then has nothing to validate on; the session
        # nearest the cut crosses it instead.
        if len(keys) >= 2 and 0.0 < config.val_fraction < 1.0:
            if "val" not in table.values():
                table[min(keys, key=h.__getitem__)] = "val"
            elif "train" not in table.values():
                table[max(keys, key=h.__getitem__)] = "train"
        return table
    val = _resolve(config.val_sessions, keys, "val_sessions", aliases or {})
    train = _resolve(config.train_sessions, keys, "train_sessions", aliases or {})
    both = (val or set()) & (train or set())
    if both:
        raise DatasetError(f"sessions in both train and val lists: {sorted(both)}")
    out: dict[str, str] = {}
    for k in keys:
        if val is not None and k in val:
            out[k] = "val"
        elif train is not None:
            out[k] = "train" if k in train else ("val" if val is None else "unused")
        else:
            out[k] = "train"
    return out


def sessions_in(
    keys: Iterable[str],
    split: str,
    config: SplitConfig = SplitConfig(),
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> set[str]:
    """The session keys that belong to ``split``."""
    name = normalize_split(split)
    table = assign(keys, config, aliases)
    if name == "all":
        return set(table)
    return {k for k, s in table.items() if s == name}


def _resolve(
    names: Iterable[str] | None,
    keys: list[str],
    what: str,
    aliases: Mapping[str, Iterable[str]],
) -> set[str] | None:
    """Each name → one key: an exact key first, then a recording name, then a
    unique key prefix."""
    if names is None:
        return None
    present = set(keys)
    out: set[str] = set()
    for name in names:
        if name in present:
            out.add(name)
            continue
        named = [k for k in aliases.get(name, ()) if k in present]
        if len(named) > 1:
            raise DatasetError(
                f"{what}: {name!r} names {len(named)} recordings ({', '.join(sorted(named))}); "
                "name the session by key instead"
            )
        matches = named or [k for k in keys if k.startswith(name)]
        if not matches:
            raise DatasetError(
                f"{what}: no session with key or recording name {name!r} in the dataset"
            )
        if len(matches) > 1:
            raise DatasetError(
                f"{what}: {name!r} matches {len(matches)} sessions; give more of the key"
            )
        out.add(matches[0])
    return out
