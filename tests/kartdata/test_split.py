"""Naming sessions in a split: by key, key prefix or recording name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from loader_dataset import make_dataset

import kartdata
from kartdata import split
from kartdata.errors import DatasetError
from kartdata.manifest import Manifest
from kartdata.preprocess import InputSpec


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("split"), sessions=3, frames=20)


def _keys_by_name(dataset: Path) -> dict[str, str]:
    return {Path(s.source).name: s.key for s in Manifest.load(str(dataset)).sessions}


def test_recording_names_select_sessions_when_loading(dataset: Path) -> None:
    by_name = _keys_by_name(dataset)
    assert sorted(by_name) == ["s0", "s1", "s2"]
    cfg = split.SplitConfig(val_sessions=("s1",))
    ds = kartdata.load(
        str(dataset), split="val", splits=cfg, input=InputSpec(12, 16), with_meta=True
    )
    seen = np.concatenate([meta["session"].numpy() for _, _, meta in ds])
    assert {k.decode() for k in seen} == {by_name["s1"]}
    assert len(seen) == 20
    # the notebook views resolve names the same way
    rows = kartdata.frames(str(dataset), splits=cfg)
    assert set(rows.loc[rows["split"] == "val", "session"]) == {by_name["s1"]}


def test_keys_prefixes_and_names_resolve_alike(dataset: Path) -> None:
    manifest = Manifest.load(str(dataset))
    aliases = split.recording_aliases(manifest.sessions)
    keys = sorted(manifest.session_keys())
    key = _keys_by_name(dataset)["s2"]
    for name in (key, key[:14], "s2"):
        got = split.sessions_in(keys, "val", split.SplitConfig(val_sessions=(name,)), aliases)
        assert got == {key}, name
    # train named by recording too; a session in neither list is unused
    cfg = split.SplitConfig(val_sessions=("s2",), train_sessions=("s0",))
    table = split.assign(keys, cfg, aliases)
    assert sorted(table.values()) == ["train", "unused", "val"]
    with pytest.raises(DatasetError, match="both train and val"):
        split.assign(keys, split.SplitConfig(val_sessions=("s2",), train_sessions=(key,)), aliases)
    with pytest.raises(
        DatasetError, match=r"val_sessions: no session with key or recording name 's9'"
    ):
        split.assign(keys, split.SplitConfig(val_sessions=("s9",)), aliases)
    # without the alias map (a pure call on keys alone) a name is unknown
    with pytest.raises(DatasetError, match="no session"):
        split.assign(keys, split.SplitConfig(val_sessions=("s2",)))


def test_ambiguous_recording_name_is_a_one_line_error(dataset: Path) -> None:
    sessions = Manifest.load(str(dataset)).sessions[:2]
    # two recordings called s0, in different folders
    sessions = [replace(s, source=f"/data/day{i}/s0") for i, s in enumerate(sessions)]
    keys = [s.key for s in sessions]
    aliases = split.recording_aliases(sessions)
    assert sorted(aliases["s0"]) == sorted(keys)
    with pytest.raises(DatasetError) as e:
        split.assign(keys, split.SplitConfig(val_sessions=("s0",)), aliases)
    assert "\n" not in str(e.value) and "'s0' names 2 recordings" in str(e.value)
    # the keys still name each one
    assert split.assign(keys, split.SplitConfig(val_sessions=(keys[1],)), aliases) == {
        keys[0]: "train",
        keys[1]: "val",
    }


def test_file_recordings_are_named_by_name_or_stem() -> None:
    assert split.recording_name("/data/ctr/run_07.npy") == "run_07.npy"
    assert split.recording_name("/data/rec/s3/") == "s3"
    assert split.recording_name("gs://bucket/rec/s3") == "s3"
    aliases = split.recording_aliases([SimpleNamespace(key="ctr-1", source="/data/ctr/run_07.npy")])
    assert aliases == {"run_07.npy": ("ctr-1",), "run_07": ("ctr-1",)}


def test_a_hash_split_that_leaves_a_side_empty_moves_the_session_nearest_the_cut() -> None:
    keys = [f"native-{i:016x}" for i in range(40)]
    h = {k: split.hash_fraction(k) for k in keys}
    # five sessions that all hash above 0.1, and five that all hash below 0.9
    high = sorted((k for k in keys if h[k] >= 0.1), key=h.__getitem__)[-5:]
    low = sorted((k for k in keys if h[k] < 0.9), key=h.__getitem__)[:5]
    table = split.assign(high, split.SplitConfig(val_fraction=0.1))
    assert [k for k, s in table.items() if s == "val"] == [high[0]]
    table = split.assign(low, split.SplitConfig(val_fraction=0.9))
    assert [k for k, s in table.items() if s == "train"] == [low[-1]]
    # once the hash puts a session in val, the borrowed one goes back to train
    first_val = min(keys, key=h.__getitem__)
    assert h[first_val] < 0.1
    table = split.assign([*high, first_val], split.SplitConfig(val_fraction=0.1))
    assert [k for k, s in table.items() if s == "val"] == [first_val]
    # a fraction of 0 or 1, or a single session, is taken as given
    assert set(split.assign(high, split.SplitConfig(val_fraction=0.0)).values()) == {"train"}
    assert set(split.assign(low, split.SplitConfig(val_fraction=1.0)).values()) == {"val"}
    assert split.assign(high[:1], split.SplitConfig(val_fraction=0.1)) == {high[0]: "train"}
