"""BatchReindex and Filter: picking rows of the batch."""

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_batch_reindex_forward_and_gradient():
    """top[i] = bottom0[index[i]]; backward scatter-adds (a row picked twice gets the sum) and
    gives rows never picked a zero gradient."""
    x = _rand(4, 2, 3)
    index = np.array([2, 0, 2, 3, 2], np.float32)
    layer = make_layer('type: "BatchReindex"')
    bottom = blobs_from(x, index)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == (5, 2, 3)
    for i, j in enumerate(index):
        np.testing.assert_array_equal(top[0].data[i], x[int(j)])
    top[0].diff[...] = np.arange(5, dtype=np.float32)[:, None, None]
    bottom[0].diff[...] = 7  # overwritten
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[:, 0, 0], [1, 0, 0 + 2 + 4, 3])
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_batch_reindex_errors():
    """Indices outside [0, N) or not whole, an index blob with more than one axis, and a
    gradient to the indices are refused."""
    layer = make_layer('type: "BatchReindex"')
    for bad in (4, -1, 0.5):
        bottom = blobs_from(_rand(4, 2), np.array([0, bad], np.float32))
        top = setup_layer(layer, bottom)
        with pytest.raises(NetError, match=r"not a whole number in \[0, 4\)"):
            layer.forward(bottom, top)
    with pytest.raises(ShapeError, match="1 axis"):
        setup_layer(layer, blobs_from(_rand(4, 2), np.zeros((2, 1), np.float32)))
    bottom = blobs_from(_rand(4, 2), np.array([1], np.float32))
    top = setup_layer(layer, bottom)
    with pytest.raises(NetError, match="index bottom"):
        layer.backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_filter_forward_and_gradient():
    """Tops are the rows of each bottom where the selector (last bottom) is non-zero, in order;
    backward puts the diffs back on those rows and zero elsewhere."""
    a, b = _rand(5, 2, seed=1), _rand(5, 3, 2, seed=2)
    selector = np.array([0, 1, 0, 2, 1], np.float32)
    layer = make_layer('type: "Filter" bottom: "a" bottom: "b" bottom: "s"')
    bottom = blobs_from(a, b, selector)
    top = setup_layer(layer, bottom, 2)
    assert top[0].data.shape == (5, 2)  # the first reshape keeps every row, as in Caffe
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    kept = [i for i in range(5) if selector[i] != 0]
    np.testing.assert_array_equal(top[0].data, a[kept])
    np.testing.assert_array_equal(top[1].data, b[kept])
    top[0].diff[...] = 1
    bottom[0].diff[...] = 5
    layer.backward(top, [True, False, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[:, 0], [0, 1, 0, 1, 1])
    check_gradient(layer, bottom, top, check_bottom=[0, 1])
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(0)


def test_filter_errors():
    """Tops must be one fewer than bottoms; the selector must be (N,) or (N, 1, ...) and match
    the bottoms' first axis; no gradient to the selector."""
    with pytest.raises(NetError, match="one top per"):
        setup_layer(make_layer('type: "Filter"'), blobs_from(_rand(2), _rand(2)), 2)
    with pytest.raises(ShapeError, match="first axes"):
        setup_layer(make_layer('type: "Filter"'), blobs_from(_rand(3, 2), _rand(2)))
    with pytest.raises(ShapeError, match=r"\(N,\)"):
        setup_layer(make_layer('type: "Filter"'), blobs_from(_rand(2, 2), _rand(2, 2)))
    layer = make_layer('type: "Filter"')
    bottom = blobs_from(_rand(2, 2), np.ones(2, np.float32))
    top = setup_layer(layer, bottom)
    with pytest.raises(NetError, match="selector"):
        layer.backward(top, [True, True], bottom)
