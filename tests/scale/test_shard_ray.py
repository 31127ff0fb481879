"""The Ray engine writes the dataset the local engine writes (issue 9)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Not importorskip: CI installs the ray extra, and a missing Ray must fail, not skip.
import ray
from typer.testing import CliRunner

from kartdata import synth
from kartdata.cli import app
from kartdata.errors import DatasetError, SourceError
from kartdata.manifest import Encoding, Manifest, orphans, verify
from kartdata.schema import decode_example
from kartdata.shard import ShardConfig, shard
from kartdata.tfrecord import read_records

SMALL = Encoding(max_width=80, max_height=60)


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local Ray for the module: starting it costs seconds on two cores."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = tmp_path_factory.mktemp("rec")
    for i in range(4):
        synth.make_native(rec / f"n{i}", 18, width=96, height=72, recovery_share=0.3, seed=i)
    synth.make_tensorkart(rec / "tk", 14, width=96, height=72, seed=9)
    synth.make_ctr(rec / "ctr", 12, mode="A", seed=7)
    return rec


def _config(**kw: object) -> ShardConfig:
    base: dict[str, object] = {
        "workers": 0,
        "validate": False,
        "trust_pickle": True,
        "encoding": SMALL,
    }
    return ShardConfig(**{**base, **kw})  # type: ignore[arg-type]


def _decoded(ds: Path) -> list[tuple[str, int, str, bytes]]:
    """(session, frame, stratum, sha256 of the decoded record's fields), sorted:
    the shard bytes differ between engines only by record order."""
    m = Manifest.load(str(ds))
    out = []
    for s in m.shards:
        for raw in read_records(str(ds / s.path), m.encoding.compression):
            r = decode_example(raw)
            h = hashlib.sha256(repr((r.pad, r.context, r.tags, r.t_ns, r.track)).encode())
            h.update(r.image)
            out.append((r.session, r.frame, s.stratum, h.digest()))
    return sorted(out)


def _sessions(m: Manifest) -> list[tuple[object, ...]]:
    return sorted(
        (s.key, s.layout, s.frames_total, s.frames_written, tuple(sorted(s.strata.items())))
        for s in m.sessions
    )


def test_ray_dataset_matches_local(tmp_path: Path, recordings: Path, ray_instance: None) -> None:
    local, distributed = tmp_path / "local", tmp_path / "ray"
    shard([recordings], local, _config())
    report = shard(
        [recordings], distributed, _config(engine="ray", workers=2, target_shard_bytes=15_000)
    )
    assert report.frames_written == 4 * 18 + 14 + 12
    a, b = Manifest.load(str(local)), Manifest.load(str(distributed))
    assert _sessions(a) == _sessions(b)
    assert (a.frames, a.strata, a.histogram, a.generation) == (
        b.frames,
        b.strata,
        b.histogram,
        b.generation,
    )
    # both actors wrote shards, rotated at the small target size
    assert {s.path.split("-w")[1][:2] for s in b.shards} == {"00", "01"}
    assert len(b.shards) > len(a.shards)
    assert _decoded(local) == _decoded(distributed)
    assert verify(str(distributed)).ok and orphans(str(distributed), b) == []

    again = shard([recordings], distributed, _config(engine="ray", workers=2))
    assert again.sessions_added == [] and len(again.sessions_skipped) == 6


def test_ray_failure_leaves_dataset_unchanged(
    tmp_path: Path, recordings: Path, ray_instance: None
) -> None:
    ds = tmp_path / "ds"
    first = synth.make_native(tmp_path / "first", 10, width=96, height=72)
    shard([first], ds, _config(engine="ray", workers=1))
    before = (ds / "manifest.json").read_bytes()
    files_before = sorted(p.name for p in (ds / "shards").iterdir())

    bad = tmp_path / "more" / "bad"
    synth.make_native(bad, 12, width=96, height=72, seed=3)
    (bad / "frames" / "00000007.png").write_bytes(b"not a png")
    synth.make_native(tmp_path / "more" / "good", 12, width=96, height=72, seed=4)
    with pytest.raises(SourceError) as err:
        shard([tmp_path / "more"], ds, _config(engine="ray", workers=2))
    assert "\n" not in str(err.value) and "00000007" in str(err.value)
    assert (ds / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (ds / "shards").iterdir()) == files_before


def test_cli_joins_a_cluster_by_address(
    tmp_path: Path, recordings: Path, ray_instance: None
) -> None:
    """A real `kartdata shard` process joins the test's Ray as it would a cluster."""
    ds = tmp_path / "cli"
    address = ray.get_runtime_context().gcs_address
    args = [str(recordings / "n0"), str(recordings / "n1"), "--out", str(ds), "--no-validate"]
    args += ["--engine", "ray", "--address", address, "--workers", "2"]
    args += ["--max-width", "80", "--max-height", "60"]
    result = subprocess.run(
        [sys.executable, "-m", "kartdata.cli", "shard", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KARTKIT_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert "36 frames" in result.stdout
    m = Manifest.load(str(ds))
    assert m.frames == 36 and verify(str(ds)).ok


def test_cli_rejects_unknown_engine(tmp_path: Path, recordings: Path) -> None:
    result = CliRunner().invoke(
        app, ["shard", str(recordings / "n0"), "--out", str(tmp_path / "x"), "--engine", "spark"]
    )
    assert isinstance(result.exception, DatasetError)
    assert "engine 'spark' is not 'local' or 'ray'" in str(result.exception)
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_ray_refuses_a_process_private_dataset(tmp_path: Path, recordings: Path) -> None:
    with pytest.raises(DatasetError, match="private to one process"):
        shard([recordings / "n0"], "ram://kartkit-ray/ds", _config(engine="ray"))
