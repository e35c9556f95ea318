"""LRN: Caffe's across- and within-channel normalization against direct loops; gradients."""

import numpy as np
import pytest

from brewnet.errors import NetError
from tests.gradcheck import blobs_from, check_gradient, forward_backward, make_layer, setup_layer


def lrn_reference(x, size, alpha, beta, k, across):
    """Caffe's LRN by loops: across channels alpha/n times the channel-window sum of squares
    plus k; within a channel square -> AVE pool (pad (n-1)/2, divisor counting padding) ->
    (1 + alpha*avg)^-beta."""
    n, c, h, w = x.shape
    r = (size - 1) // 2
    y = np.zeros_like(x, dtype=np.float64)
    for i in range(n):
        for ch in range(c):
            for a in range(h):
                for b in range(w):
                    if across:
                        lo, hi = max(ch - r, 0), min(ch + r + 1, c)
                        scale = k + alpha / size * np.sum(x[i, lo:hi, a, b].astype(np.float64)
                                                          ** 2)
                    else:
                        h0, w0 = a - r, b - r
                        h1, w1 = min(h0 + size, h + r), min(w0 + size, w + r)
                        divisor = (h1 - h0) * (w1 - w0)
                        window = x[i, ch, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
                        scale = 1 + alpha * np.sum(window.astype(np.float64) ** 2) / divisor
                    y[i, ch, a, b] = x[i, ch, a, b] * scale ** -beta
    return y


CASES = [
    ("", 5, 1.0, 0.75, 1.0, True),
    ("local_size: 3 alpha: 0.5 beta: 0.6 k: 2", 3, 0.5, 0.6, 2.0, True),
    ("local_size: 7 alpha: 2 beta: 1.2", 7, 2.0, 1.2, 1.0, True),
    ("local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL", 3, 5e-5, 0.75, 1.0,
     False),
    ("local_size: 3 alpha: 3 beta: 0.9 norm_region: WITHIN_CHANNEL", 3, 3.0, 0.9, 1.0, False),
    ("local_size: 5 alpha: 2 beta: 0.75 norm_region: WITHIN_CHANNEL", 5, 2.0, 0.75, 1.0, False),
]


@pytest.mark.parametrize("params,size,alpha,beta,k,across", CASES)
def test_forward_matches_loops(params, size, alpha, beta, k, across):
    """Caffe's LRN: alpha divided by local_size across channels, AVE-pool divisor within."""
    x = np.random.default_rng(0).standard_normal((2, 6, 4, 5)).astype(np.float32) * 2
    layer = make_layer(f'type: "LRN" lrn_param {{ {params} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, lrn_reference(x, size, alpha, beta, k, across),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params,size,alpha,beta,k,across", CASES)
def test_gradient(params, size, alpha, beta, k, across):
    """Caffe's LRN backward: dy*scale^-beta - 2*alpha'*beta*x*window_sum(dy*y/scale)."""
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 4)).astype(np.float32)
    layer = make_layer(f'type: "LRN" lrn_param {{ {params} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


def test_backward_twice_is_stable():
    """backward only reads what forward stored, so a second backward gives the same diff."""
    x = np.random.default_rng(2).standard_normal((1, 4, 3, 3)).astype(np.float32)
    layer = make_layer('type: "LRN" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }')
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, 1)
    first = bottom[0].diff.copy()
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, first)


def test_even_local_size_is_an_error():
    """Caffe's LRN only supports odd local_size."""
    layer = make_layer('type: "LRN" lrn_param { local_size: 4 }')
    with pytest.raises(NetError, match="odd"):
        setup_layer(layer, blobs_from(np.zeros((1, 4, 2, 2), np.float32)))


def test_needs_four_axes():
    """Caffe's LRN requires a 4-axis bottom."""
    layer = make_layer('type: "LRN"')
    with pytest.raises(NetError, match="4 axes"):
        setup_layer(layer, blobs_from(np.zeros((2, 4), np.float32)))
