"""Winograd's F(2x2, 3x3) forward (brewnet/layers/winograd.py) against the direct sum: the
3x3 stride-1 pad-1 convolution with its per-channel epilogue, odd and even extents, groups,
several chunks of samples, and the batch/geometry rule that picks it."""

import numpy as np
import pytest

from brewnet.layers import winograd

pytest.importorskip("numba")


def direct(x, g, a, b, slope, group=1):
    """The reference in float64: cross-correlation with zero padding 1 per group, then the
    epilogue."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    n, c, h, w = x.shape
    m = g.shape[0]
    cols = cols.reshape(n, group, c // group, h, w, 3, 3)
    y = np.einsum("ngchwij,gmcij->ngmhw", cols,
                  g.astype(np.float64).reshape(group, m // group, c // group, 3, 3))
    y = y.reshape(n, m, h, w)
    y = y * a[None, :, None, None] + b[None, :, None, None]
    return np.maximum(y, 0) + slope * np.minimum(y, 0)


@pytest.mark.parametrize("shape", [(4, 8, 6, 9, 9, 1), (5, 3, 16, 7, 10, 1),
                                   (4, 32, 32, 14, 14, 1), (6, 5, 4, 1, 2, 1),
                                   (4, 8, 12, 13, 13, 2), (4, 6, 6, 5, 6, 3)])
@pytest.mark.parametrize("slope", [0.0, 0.1, 1.0])
def test_forward_affine_equals_the_direct_convolution(shape, slope):
    n, c, m, h, w, group = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g = rng.standard_normal((m, c // group, 3, 3)).astype(np.float32)
    a = rng.uniform(0.5, 2, m).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    y = np.full((n, m, h, w), np.nan, dtype=np.float32)
    winograd.forward_affine(np, x, g, group, y, a, b, np.float32(slope))
    want = direct(x, g, a, b, slope, group)
    assert np.abs(y - want).max() <= 1e-5 * np.abs(want).max()


def test_chunks_of_samples_give_the_whole_batch(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 16, 12, 12)).astype(np.float32)
    g = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    a, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    whole = np.empty((7, 8, 12, 12), np.float32)
    winograd.forward_affine(np, x, g, 1, whole, a, b, np.float32(1))
    monkeypatch.setattr(winograd, "_CHUNK_BYTES", 16 * 16 * 36 * 4 * 2)  # two samples a chunk
    chunked = np.empty_like(whole)
    winograd.forward_affine(np, x, g, 1, chunked, a, b, np.float32(1))
    np.testing.assert_array_equal(chunked, whole)


def test_only_3x3_stride_1_pad_1_from_batch_4_or_enough_tiles_and_channels():
    same = ((3, 3), (1, 1), (1, 1), (1, 1))
    assert winograd.applies(4, 7, 7, 16, *same)
    assert not winograd.applies(3, 7, 7, 64, *same)  # 48 tiles
    assert winograd.applies(1, 28, 28, 64, *same)  # 196 tiles
    assert not winograd.applies(1, 28, 28, 32, *same)  # too few channels
    assert not winograd.applies(1, 27, 26, 64, *same)  # 182 tiles
    for i, other in enumerate([(5, 5), (2, 2), (0, 0), (2, 2)]):
        changed = list(same)
        changed[i] = other
        assert not winograd.applies(16, 14, 14, 64, *changed)
