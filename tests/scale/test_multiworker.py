"""Training on several workers, on remote storage and through the tf.data
service (issue 9)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kartdata import synth
from kartdata.loader import LoadConfig, prepare
from kartdata.manifest import Encoding, Manifest, verify
from kartdata.shard import ShardConfig, shard
from kartdata.sources import open_source

STEPS = 3


def _recordings(root: Path, frames: int) -> str:
    """Three sessions; returns the key of the last, held out for validation."""
    for i in range(3):
        synth.make_native(root / f"n{i}", frames, width=128, height=96, seed=i)
    return open_source(root / "n2").key


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Small shards, so that every stratum has more files than there are workers."""
    root = tmp_path_factory.mktemp("mw")
    val_key = _recordings(root / "rec", 40)
    config = ShardConfig(
        workers=0,
        validate=False,
        encoding=Encoding(max_width=96, max_height=72),
        target_shard_bytes=6000,
    )
    shard([root / "rec"], root / "ds", config)
    return root / "ds", val_key


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train_args(ds: Path | str, out: Path, val_key: str) -> list[str]:
    return [
        sys.executable, "-m", "kartmodel.cli", "train", str(ds), "--out", str(out),
        "--model", "categorical", "--height", "36", "--width", "64", "--batch-size", "8",
        "--epochs", "1", "--steps-per-epoch", str(STEPS),
        "--val-sessions", val_key, "--seed", "3", "--mixed-precision", "off", "--no-augment",
    ]  # fmt: skip


def _model_weights(run: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run / "ckpt"))
    names = [
        n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/"))
    ]
    return {n: reader.get_tensor(n) for n in names}


def _iterations(run: Path) -> int:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run / "ckpt"))
    name = next(n for n in reader.get_variable_to_shape_map() if "iterations" in n)
    return int(reader.get_tensor(name))


def test_two_workers_train_in_lockstep(dataset: tuple[Path, str], tmp_path: Path) -> None:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    for i in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
        }
        logs.append(tmp_path / f"w{i}.log")
        with open(logs[-1], "w") as log:
            procs.append(
                subprocess.Popen(
                    _train_args(*dataset[:1], tmp_path / f"w{i}", dataset[1]),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    # A worker that fails leaves the other waiting in a collective: stop both then.
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[0].wait(timeout=0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs, strict=True):
        text = log.read_text()
        assert p.returncode == 0, text[-3000:]
        assert "on 2 replica(s)" in text
    a, b = _model_weights(tmp_path / "w0"), _model_weights(tmp_path / "w1")
    assert a.keys() == b.keys()
    # Every weight the optimizer updates (and its Adam moments) must agree
    # exactly; batch-norm moving statistics are each replica's own (Keras does
    # not all-reduce them).
    learned = [n for n in a if n.startswith("optimizer/")]
    assert len([n for n in learned if "_trainable_variables" in n]) >= 10
    for name in learned:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # and they were trained: the two workers' data differ, so their batch-norm
    # statistics do
    assert any(not np.array_equal(a[n], b[n]) for n in a if "moving_mean" in n)
    assert _iterations(tmp_path / "w0") == _iterations(tmp_path / "w1") == STEPS
    # only the chief writes the history and the best weights
    assert (tmp_path / "w0" / "history.csv").exists()
    assert not (tmp_path / "w1" / "history.csv").exists()


def test_workers_read_disjoint_shards(dataset: tuple[Path, str]) -> None:
    from kartmodel.distribute import worker_shards

    for balance in (None, "uniform"):
        prep = prepare(str(dataset[0]), LoadConfig(split="all", batch_size=8, balance=balance))
        parts = [worker_shards(prep, 2, i) for i in range(2)]
        assert all(p is not None for p in parts)
        files = [{s.path for s, _ in p.shards} for p in parts]  # type: ignore[union-attr]
        assert files[0].isdisjoint(files[1])
        assert files[0] | files[1] == {s.path for s, _ in prep.shards}
        for p in parts:
            # every stratum the pass reads is in every worker's share
            assert {s.stratum for s, _ in p.shards} == {s.stratum for s, _ in prep.shards}  # type: ignore[union-attr]
            assert p.plan.epoch_samples == -(-prep.plan.epoch_samples // 2)  # type: ignore[union-attr]
        # more workers than files (balancing: than some stratum read has): no fair split
        per_stratum = Counter(s.stratum for s, _ in prep.shards)
        too_many = (min(per_stratum.values()) if balance else len(prep.shards)) + 1
        assert worker_shards(prep, too_many, 0) is None
        assert worker_shards(prep, too_many - 1, too_many - 2) is not None


def test_dataset_on_ram_filesystem_trains(tmp_path: Path) -> None:
    """Shard straight to TensorFlow's in-memory filesystem, then load and train
    from it: no step may assume the dataset is a local path."""
    from kartdata.split import SplitConfig
    from kartmodel.config import DataOptions, TrainConfig
    from kartmodel.trainer import train

    val_key = _recordings(tmp_path / "rec", 24)
    ds = f"ram://kartkit-{os.getpid()}/ds"
    report = shard(
        [tmp_path / "rec"],
        ds,
        # worker processes could not write the process-private ram:// (runs here)
        ShardConfig(workers=2, validate=False, encoding=Encoding(max_width=96, max_height=72)),
    )
    assert report.frames_written == 72
    assert Manifest.load(ds).frames == 72 and verify(ds).ok
    assert not Path(ds).exists() and not Path("ram:").exists()
    config = TrainConfig(
        ds,
        model="categorical",
        height=36,
        width=64,
        epochs=1,
        batch_size=8,
        steps_per_epoch=STEPS,
        val_steps=1,
        mixed_precision="off",
        data=DataOptions(splits=SplitConfig(val_sessions=(val_key,)), augment=False),
    )
    result = train(config, tmp_path / "run", progress=None)
    assert result.epochs == 1 and result.history[0]["step"] == STEPS
    assert result.history[0]["examples"] == STEPS * 8


def test_training_through_the_data_service(dataset: tuple[Path, str], tmp_path: Path) -> None:
    """Reading, decoding and augmentation run on a tf.data service worker."""
    import tensorflow as tf

    from kartdata.split import SplitConfig
    from kartmodel.config import DataOptions, TrainConfig
    from kartmodel.trainer import train

    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    worker = service.WorkerServer(
        service.WorkerConfig(dispatcher_address=dispatcher.target.split("://")[1])
    )
    assert worker._num_tasks() == 0
    config = TrainConfig(
        str(dataset[0]),
        model="categorical",
        height=36,
        width=64,
        epochs=1,
        batch_size=8,
        steps_per_epoch=STEPS,
        val_steps=1,
        mixed_precision="off",
        data=DataOptions(splits=SplitConfig(val_sessions=(dataset[1],))),
    )
    address = dispatcher.target.removeprefix("grpc://")
    result = train(config, tmp_path / "run", progress=None, data_service=address)
    assert result.history[0]["step"] == STEPS and result.history[0]["examples"] == STEPS * 8
    # one task per pass (train, val) ran on the service's worker
    assert worker._num_tasks() == 2
    worker.stop()
    dispatcher.stop()
