"""The compiled BatchNorm bottom gradient (batch statistics) is the NumPy body's bit for bit,
out of place and in place; the body is checked against numerical gradients in
tests/layers/test_batch_norm.py."""

import numpy as np
import pytest

from tests.gradcheck import blobs_from, make_layer, run_in_place, setup_layer

pytest.importorskip("numba")


def gradients(monkeypatch, compiled: bool) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: false }')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    for _ in range(2):  # a second backward must give the same: no state is overwritten
        layer.backward(top, [True], bottom)
    _, in_place = run_in_place(
        make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: false }'), x, dy)
    return bottom[0].diff.copy(), in_place


def test_kernel_matches_numpy_body(monkeypatch):
    """Same products, sums and division per element, in the same order."""
    for compiled, numpy_body in zip(gradients(monkeypatch, True),
                                    gradients(monkeypatch, False), strict=True):
        np.testing.assert_array_equal(compiled, numpy_body)
