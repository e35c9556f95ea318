"""ArgMax: Caffe's output shapes and tie order."""

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, make_layer, setup_layer


def _ranked(values):
    """Caffe's std::partial_sort with greater<pair<value, index>>: descending by value, then
    by index (so equal values put the larger index first)."""
    pairs = sorted(((float(v), j) for j, v in enumerate(values)), reverse=True)
    return [j for _, j in pairs], [v for v, _ in pairs]


def _data(shape, seed=0):
    # few distinct values so ties are common
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.float32)


@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize("top_k", [1, 3])
def test_argmax_without_axis(out_max_val, top_k):
    """Top (N, 1 or 2, top_k, 1): per sample over count(1..) values, indices then values."""
    x = _data((3, 2, 2, 2))
    layer = make_layer(f'type: "ArgMax" argmax_param {{ out_max_val: {str(out_max_val).lower()}'
                       f' top_k: {top_k} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == (3, 2 if out_max_val else 1, top_k, 1)
    for n in range(3):
        idx, vals = _ranked(x[n].reshape(-1))
        np.testing.assert_array_equal(top[0].data[n, 0, :, 0], idx[:top_k])
        if out_max_val:
            np.testing.assert_array_equal(top[0].data[n, 1, :, 0], vals[:top_k])


def test_argmax_small_bottom_gets_three_axes():
    """A 2-axis bottom still gives a 3-axis top (N, 1, top_k)."""
    x = np.array([[1, 5, 5, 0]], np.float32)
    layer = make_layer('type: "ArgMax" argmax_param { top_k: 2 }')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == (1, 1, 2)
    np.testing.assert_array_equal(top[0].data[0, 0], [2, 1])  # tie: larger index first


@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_argmax_with_axis(axis, out_max_val):
    """With axis, that axis becomes top_k; out_max_val gives only the values."""
    x = _data((3, 4, 5), seed=1)
    top_k = 2
    layer = make_layer(f'type: "ArgMax" argmax_param {{ axis: {axis} top_k: {top_k} '
                       f'out_max_val: {str(out_max_val).lower()} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    a = axis % 3
    shape = list(x.shape)
    shape[a] = top_k
    assert top[0].data.shape == tuple(shape)
    xm = np.moveaxis(x, a, -1)
    ym = np.moveaxis(top[0].data, a, -1)
    for o in np.ndindex(xm.shape[:-1]):
        idx, vals = _ranked(xm[o])
        np.testing.assert_array_equal(ym[o], (vals if out_max_val else idx)[:top_k])


def test_argmax_errors():
    """top_k beyond the values available, or below 1, is refused; there is no backward."""
    bottom = blobs_from(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match="exceeds"):
        setup_layer(make_layer('type: "ArgMax" argmax_param { top_k: 4 }'), bottom)
    with pytest.raises(ShapeError, match="exceeds"):
        setup_layer(make_layer('type: "ArgMax" argmax_param { top_k: 3 axis: 0 }'), bottom)
    with pytest.raises(NetError, match="at least 1"):
        setup_layer(make_layer('type: "ArgMax" argmax_param { top_k: 0 }'), bottom)
    layer = make_layer('type: "ArgMax"')
    top = setup_layer(layer, bottom)
    with pytest.raises(NetError, match="no backward"):
        layer.backward(top, [True], bottom)
