"""Recordings → compressed TFRecord shards grouped by stratum, plus the manifest.

The modules, in the order a frame passes through them:

- :mod:`~kartdata.shard.config` — :class:`ShardConfig` (what to do) and
  :class:`ShardReport` (what was done);
- :mod:`~kartdata.shard.pipeline` — :func:`shard`: lock, clean up, pick the
  new sessions, run an engine, write the manifest once;
- :mod:`~kartdata.shard.engine` — the engine interface (:class:`ShardJob`,
  ``run(job, tasks, workers, on_frames)``) and engine lookup by name;
  :mod:`~kartdata.shard.local` (processes) and :mod:`~kartdata.shard.ray`
  (Ray actors) implement it;
- :mod:`~kartdata.shard.session` — one recording streamed into a worker's
  shards, the same in every engine;
- :mod:`~kartdata.shard.context` (neighbour pads), :mod:`~kartdata.shard.images`
  (stored image bytes), :mod:`~kartdata.shard.histogram` (manifest histograms);
- :mod:`~kartdata.shard.files` — shard files and one worker's open shards.
"""

from __future__ import annotations

from kartdata.shard.config import Engine, ShardConfig, ShardReport, encoding_with
from kartdata.shard.engine import EngineResult, SessionTask, ShardJob
from kartdata.shard.pipeline import dataset_lock, shard

__all__ = [
    "Engine",
    "EngineResult",
    "SessionTask",
    "ShardConfig",
    "ShardJob",
    "ShardReport",
    "dataset_lock",
    "encoding_with",
    "shard",
]
