"""The compiled across-channel LRN forward gives the NumPy body's bits (outputs, and the
scale and scale^-beta backward reads); the body is checked against loops in
tests/layers/test_lrn.py."""

import numpy as np
import pytest

from brewnet.layers.lrn import ROOT_POWERS, negative_power
from brewnet.proto import caffe_pb2
from tests.gradcheck import blobs_from, make_layer, setup_layer

pytest.importorskip("numba")


def _forward(monkeypatch, compiled: bool, x, params: str, phase: int):
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    layer = make_layer(f'type: "LRN" lrn_param {{ {params} }}', phase)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("beta", sorted(ROOT_POWERS))
@pytest.mark.parametrize(("size", "channels"), [(5, 9), (3, 2), (7, 4)])
def test_kernel_matches_numpy_body(monkeypatch, beta, size, channels):
    """Same window sums in the same order, the same formula for scale^-beta: equal bits,
    also with the window wider than the channels (7 over 4)."""
    x = (np.random.default_rng(5).standard_normal((3, channels, 5, 7)) * 3).astype(np.float32)
    params = f"local_size: {size} alpha: 0.7 beta: {beta} k: 1.5"
    runs = {c: _forward(monkeypatch, c, x, params, caffe_pb2.TRAIN) for c in (True, False)}
    (kernel, _, top), (body, _, expected) = runs[True], runs[False]
    np.testing.assert_array_equal(top[0].data, expected[0].data)
    for stored, reference in zip(kernel._buffers[:2], body._buffers[:2], strict=True):
        np.testing.assert_array_equal(stored, reference)  # scale, scale^-beta


def test_backward_after_a_test_forward(monkeypatch):
    """A TEST forward through the kernel stores no scale; a backward that follows (pycaffe's
    net.backward on a deploy net) computes it first and gives the TRAIN layer's gradient."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    diffs = []
    for phase in (caffe_pb2.TEST, caffe_pb2.TRAIN):
        layer, bottom, top = _forward(monkeypatch, True, x, "local_size: 3 alpha: 2", phase)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        diffs.append(bottom[0].diff.copy())
    np.testing.assert_array_equal(diffs[0], diffs[1])


@pytest.mark.parametrize("beta", [*sorted(ROOT_POWERS), 0.6])
def test_negative_power_within_rounding_of_pow(beta):
    """The root formulas are within a few float32 roundings of scale^-beta (and any other
    exponent goes through power)."""
    scale = np.random.default_rng(7).uniform(1e-3, 1e4, 1000).astype(np.float32)
    out, scratch = np.empty_like(scale), np.empty_like(scale)
    negative_power(np, scale, beta, out, scratch)
    np.testing.assert_allclose(out, scale.astype(np.float64) ** -beta, rtol=4e-7)
