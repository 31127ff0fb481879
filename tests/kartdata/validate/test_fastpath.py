"""The fast paths of validate against plain per-frame definitions, and its
forked decode workers under a parent with TensorFlow's threads running."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kartdata.validate import desktop as dk
from kartdata.validate import features as ft
from kartdata.validate.config import DesktopChecks


def _plain_describe(image: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """The features of one image straight from their definition, float64."""
    h, w = image.shape[:2]
    (sr, sc), (gr, gc), (tr, tc) = ft.SAMPLE, ft.GRID, ft.THUMB
    rows = (np.arange(sr) * h // sr + h // (2 * sr)).clip(0, h - 1)
    cols = (np.arange(sc) * w // sc + w // (2 * sc)).clip(0, w - 1)
    s = image[rows[:, None], cols[None, :]].astype(np.float64)
    lum = s @ np.array([0.299, 0.587, 0.114])
    dx = np.abs(np.diff(lum, axis=1, append=lum[:, -1:]))
    dy = np.abs(np.diff(lum, axis=0, append=lum[-1:, :]))
    grid = (gr, sr // gr, gc, sc // gc)
    edge = (dx + dy).reshape(grid)
    blocks = np.concatenate(
        [
            s.reshape(*grid, 3).mean(axis=(1, 3)) / 255.0,
            lum.reshape(grid).std(axis=(1, 3))[..., None] / 64.0,
            np.minimum(edge.mean(axis=(1, 3)) / 32.0, 2.0)[..., None],
            (edge < 1.0).mean(axis=(1, 3))[..., None],
        ],
        axis=-1,
    )
    thumb = lum.reshape(tr, sr // tr, tc, sc // tc).mean(axis=(1, 3))
    return float(lum.max()), float(lum.std()), thumb, blocks


@pytest.mark.parametrize("size", [(480, 640), (400, 600), (37, 53)])
def test_batched_features_match_their_definition(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0])
    h, w = size
    # patches with sharp edges: flat where |difference| is 0, edgy where it is
    # far above 1 — no ties at the flat threshold for rounding to decide
    yy, xx = np.mgrid[0:h, 0:w]
    patches = ((xx // 37 + yy // 23) % 3)[..., None] * np.array([80, 50, 20])
    images = [
        rng.integers(0, 256, (h, w, 3), np.uint8),
        patches.astype(np.uint8),
        np.full((h, w, 3), 7, np.uint8),
    ] * 7  # more frames than one batch, so batches are joined too
    feats, first, last = ft._features([(k, lambda im=im: im) for k, im in enumerate(images)])
    for k, image in enumerate(images):
        lum_max, lum_std, thumb, blocks = _plain_describe(image)
        assert feats.lum_max[k] == pytest.approx(lum_max, abs=1e-3)
        assert feats.lum_std[k] == pytest.approx(lum_std, abs=1e-2)
        np.testing.assert_allclose(feats.blocks[k].astype(np.float64), blocks, atol=2e-3)
        if k:
            prev = _plain_describe(images[k - 1])[2]
            assert feats.diff_prev[k] == pytest.approx(np.abs(thumb - prev).mean(), abs=1e-3)
    assert np.isnan(feats.diff_prev[0])
    np.testing.assert_allclose(first, _plain_describe(images[0])[2], atol=1e-3)
    np.testing.assert_allclose(last, _plain_describe(images[-1])[2], atol=1e-3)


def _plain_foreign(
    blocks: np.ndarray, ref: np.ndarray, ref_pos: np.ndarray, cfg: DesktopChecks
) -> np.ndarray:
    n, nb = len(blocks), blocks.shape[1] * blocks.shape[2]
    q = blocks.reshape(n, nb, -1).astype(np.float64)
    r = ref.reshape(len(ref), nb, -1).astype(np.float64)
    out = np.zeros((n, nb), bool)
    for i in range(n):
        keep = np.abs(ref_pos - i) > cfg.exclusion_radius
        d = np.sqrt(((q[i][None] - r[keep]) ** 2).sum(-1))  # [refs, nb]
        out[i] = d.min(axis=0) > cfg.block_distance if keep.any() else True
    return out


def test_vectorised_desktop_scoring_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    cfg = DesktopChecks()
    # clustered blocks, so that both "near" and "foreign" occur, and more
    # frames than one scoring chunk, so that chunks run in threads
    centres = rng.random((4, 6, 8, 6)).astype(np.float32)
    n = 150
    blocks = (
        centres[rng.integers(0, 4, n)]
        + rng.normal(0, 1, (n, 6, 8, 6)) * rng.uniform(0.05, 0.35, (n, 1, 1, 1)).astype(np.float32)
    ).astype(np.float32)
    own = np.sort(rng.choice(n, 60, replace=False))
    other = (centres[rng.integers(0, 4, 20)] + 0.05).astype(np.float32)
    ref = np.concatenate([blocks[own], other])
    ref_pos = np.concatenate([own, np.full(20, -(10**9))])
    got = dk._foreign_blocks(blocks, ref, ref_pos, cfg)
    want = _plain_foreign(blocks, ref, ref_pos, cfg)
    assert 0.05 < want.mean() < 0.95
    np.testing.assert_array_equal(got, want)
    # scoring some frames only (round two): those rows as before, the rest clean
    which = np.sort(rng.choice(n, 70, replace=False))
    some = dk._foreign_blocks(blocks, ref, ref_pos, cfg, which)
    np.testing.assert_array_equal(some[which], want[which])
    assert not np.delete(some, which, axis=0).any()
    # a frame in the reference never matches itself: copies of one odd frame
    # in a run of three are foreign even though all three are references
    odd = np.concatenate(
        [blocks[:10], np.repeat(rng.random((1, 6, 8, 6)) + 3.0, 3, 0), blocks[10:20]]
    )
    odd = odd.astype(np.float32)
    pos = np.arange(len(odd))
    foreign = dk._foreign_blocks(odd, odd, pos, cfg)
    assert foreign[10:13].all()


def test_forked_workers_with_tensorflow_threads_in_the_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import tensorflow as tf
        from kartdata import synth
        from kartdata.sources import open_source
        from kartdata.validate import ValidateConfig, analyse

        # run ops so that TensorFlow's thread pools exist and are busy-able
        x = tf.random.uniform((256, 256))
        for _ in range(20):
            x = tf.linalg.matmul(x, x) / 256.0
        path = synth.make_native(sys.argv[1], 120, width=160, height=120)
        one = analyse([open_source(path)], ValidateConfig(workers=1))[0].verdicts
        two = analyse([open_source(path)], ValidateConfig(workers=2))[0].verdicts
        assert one == two, (one, two)
        print("ok", len(one))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("ok")


@pytest.mark.parametrize("n", [0, 1, ft.BATCH, ft.TAIL + 1, ft.CHUNK * 3 + ft.TAIL + 5, 2000])
def test_worker_chunks_cover_every_frame_once_and_end_small(n: int) -> None:
    bounds = ft.chunk_bounds(n)
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(n))
    assert all(0 < b - a <= ft.CHUNK for a, b in bounds)
    # The chunks that finish a session are never larger than a feature batch.
    tail = [b - a for a, b in bounds if b > n - ft.TAIL]
    assert all(size <= ft.BATCH for size in tail)
