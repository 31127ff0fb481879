from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kartdata import synth
from kartdata.errors import SourceError, UntrustedPickleError
from kartdata.schema import RECOVERY_TAG
from kartdata.sources import discover, open_source
from kartdata.sources.base import recording_of
from kartdata.sources.ctr import FRAME_NS, CtrFile


def test_refuses_without_trust(ctr_file: Path) -> None:
    with pytest.raises(UntrustedPickleError, match=r"\.npy: .*runs code.*--trust-pickle"):
        open_source(ctr_file)
    with pytest.raises(UntrustedPickleError):
        discover([ctr_file.parent])


def test_reads_labels_colours_and_name(ctr_file: Path) -> None:
    items = np.load(ctr_file, allow_pickle=True)
    s = open_source(ctr_file, trust_pickle=True)
    assert isinstance(s, CtrFile)
    m = s.meta
    assert (m.track, m.player, m.width, m.height, m.fps) == ("crash_cove", "synth", 160, 90, 10.0)
    assert m.tags == (RECOVERY_TAG, "ctr-mode-A")
    assert m.created == "2020-01-01T00:00:00"
    frames = list(s.frames())
    assert len(frames) == 50
    for f, (bgr, onehot) in zip(frames, items, strict=True):
        assert f.pad.x == (-1.0, 0.0, 1.0)[int(np.argmax(onehot))]
        assert f.pad.buttons == {"a"}
        assert f.tags == (RECOVERY_TAG, "ctr-mode-A")
        np.testing.assert_array_equal(f.image(), bgr[..., ::-1])
    assert [f.t_ns for f in frames[:3]] == [0, FRAME_NS, 2 * FRAME_NS]
    assert s.key.startswith("ctr-") and s.key == CtrFile(ctr_file, trust_pickle=True).key


def test_normal_mode_is_not_recovery(tmp_path: Path) -> None:
    s = CtrFile(synth.make_ctr(tmp_path, 5, mode="N"), trust_pickle=True)
    assert s.meta.tags == ("ctr-mode-N",)


def test_bad_label_and_truncated_file(ctr_file: Path, tmp_path: Path) -> None:
    items = np.load(ctr_file, allow_pickle=True)
    items[7, 1] = np.array([1, 1, 0], np.uint8)
    bad = tmp_path / "2020-01-01_00-00-00_u_t_N_1.npy"
    np.save(bad, items, allow_pickle=True)
    with pytest.raises(SourceError, match=r"_N_1\.npy\[7\]: frame 7: label .* not a one-hot"):
        list(CtrFile(bad, trust_pickle=True).frames())
    data = ctr_file.read_bytes()
    ctr_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"\.npy: not a readable \.npy file"):
        list(CtrFile(ctr_file, trust_pickle=True).frames())


def test_key_covers_the_frames_and_keeps_the_name(ctr_file: Path, tmp_path: Path) -> None:
    items = np.load(ctr_file, allow_pickle=True)
    items[3, 0][0, 0, 0] ^= 1  # one pixel of one frame: the same file size
    other = tmp_path / "other" / ctr_file.name
    other.parent.mkdir()
    np.save(other, items, allow_pickle=True)
    assert other.stat().st_size == ctr_file.stat().st_size
    a, b = CtrFile(ctr_file, trust_pickle=True).key, CtrFile(other, trust_pickle=True).key
    assert a != b and recording_of(a) == recording_of(b)
