"""The compiled epilogues (per-channel ``act(y·a + b)``, alone and inside the depthwise
forward) give the NumPy bodies' values bit for bit; the bodies are checked against the
unfused BatchNorm, Scale and ReLU layers in tests/net/test_fusion.py."""

import numpy as np
import pytest

from brewnet.layers import depthwise, epilogue
from tests.gradcheck import blobs_from, make_layer, setup_layer

pytest.importorskip("numba")

SLOPES = [0.0, 0.1, 1.0]  # ReLU, leaky ReLU, no activation


def _affine(rng, g, m):
    return (rng.standard_normal((g, m)).astype(np.float32),
            rng.standard_normal((g, m)).astype(np.float32))


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("shape", [(2, 1, 6, 25), (3, 2, 4, 7)])
def test_epilogue_kernel_matches_numpy_body(monkeypatch, slope, shape):
    rng = np.random.default_rng(3)
    y = rng.standard_normal(shape).astype(np.float32)
    a, b = _affine(rng, *shape[1:3])
    out = {}
    for compiled in (True, False):
        monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
        out[compiled] = y.copy()
        epilogue.apply(np, out[compiled], a, b, np.float32(slope))
    np.testing.assert_array_equal(out[True], out[False])
    expected = y * a[None, :, :, None] + b[None, :, :, None]
    if slope != 1:
        expected = np.maximum(expected, 0) + np.float32(slope) * np.minimum(expected, 0)
    np.testing.assert_allclose(out[False], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize(("stride", "dilation", "pad"),
                         [((1, 1), (1, 1), (1, 1)), ((2, 1), (1, 2), (2, 1)),
                          ((1, 2), (1, 1), (0, 0)), ((2, 2), (1, 1), (3, 3)),
                          ((1, 1), (2, 3), (2, 1))])
@pytest.mark.parametrize("width", [9, 10, 40])
def test_depthwise_forward_affine_kernel_matches_numpy_body(monkeypatch, slope, stride,
                                                            dilation, pad, width):
    """The kernel pads plane by plane, split by column phase, where the NumPy body pads the
    whole bottom (also a padding wider than the kernel reaches); narrow stride-1 planes run
    as one flat run (width 10), wide ones row by row (width 40: rows of at least
    ``FLAT_BELOW``)."""
    rng = np.random.default_rng(4)
    n, c, kh, kw, h, w_ = 2, 5, 3, 3, 9, width
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((c, kh, kw)).astype(np.float32)
    hp, wp = h + 2 * pad[0], w_ + 2 * pad[1]
    oh = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    a, b = (v.reshape(c) for v in _affine(rng, 1, c))
    out = {}
    for compiled in (True, False):
        monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
        out[compiled] = np.empty((n, c, oh, ow), np.float32)
        xpad = np.zeros((n, c, hp, wp), np.float32) if pad != (0, 0) else None
        depthwise.forward_affine(np, x, xpad, pad, w, out[compiled],
                                 np.empty_like(out[compiled]), stride, dilation, a, b,
                                 np.float32(slope))
    np.testing.assert_array_equal(out[True], out[False])



EDGES = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, 1e-45, -1e-45, 3.0, -3.0], np.float32)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_fused_relu_gives_the_relu_layers_values_at_the_edges(monkeypatch, slope):
    """A fused epilogue (the compiled kernel, the depthwise kernel and the NumPy body) gives
    what the ReLU layer gives for ±inf, NaN, ±0 and subnormals: with slope 0 a −inf is 0, not
    ``0·−inf`` = NaN, and NaN stays NaN."""
    layer = make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}')
    bottom = blobs_from(EDGES.reshape(1, 1, 1, -1))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = top[0].data.reshape(-1)
    one, zero = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    for compiled in (True, False):
        monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
        y = EDGES.reshape(1, 1, 1, -1).copy()
        epilogue.apply(np, y, one, zero, np.float32(slope))
        np.testing.assert_array_equal(y.reshape(-1), expected)
        out = np.empty((1, 1, 1, EDGES.size), np.float32)
        depthwise.forward_affine(np, EDGES.reshape(1, 1, 1, -1), None, (0, 0),
                                 np.ones((1, 1, 1), np.float32), out, np.empty_like(out),
                                 (1, 1), (1, 1), one.reshape(1), zero.reshape(1),
                                 np.float32(slope))
        np.testing.assert_array_equal(out.reshape(-1), expected)
