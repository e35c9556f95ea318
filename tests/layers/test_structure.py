"""Split and Flatten: layers that copy values without changing them."""

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_flat_order, check_gradient, make_layer, setup_layer


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_split_copies_forward_and_sums_backward(num_top):
    """Every top is a copy of the bottom; the bottom's diff is the sum of the tops' diffs."""
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    layer = make_layer('type: "Split"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    for i, t in enumerate(top):
        np.testing.assert_array_equal(t.data, x)
        t.diff[...] = i + 1
    bottom[0].diff[...] = 100  # overwritten, not accumulated
    layer.backward(top, [True], bottom)
    assert np.all(bottom[0].diff == sum(range(1, num_top + 1)))


def test_split_tops_share_the_bottom_data():
    """As Caffe's ShareData, every top's data is the bottom's array (no copy, no memory of its
    own), also after the bottom changes shape; the diffs stay separate."""
    layer = make_layer('type: "Split"')
    bottom = blobs_from(np.arange(6, dtype=np.float32).reshape(2, 3))
    top = setup_layer(layer, bottom, 2)
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data for t in top)
    assert not np.shares_memory(top[0].diff, top[1].diff)
    bottom[0].reshape(4, 5)
    bottom[0].data[...] = 7
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data and t.diff.shape == (4, 5) for t in top)


def test_split_gradient_and_no_in_place():
    """Numerical gradients agree; a top equal to the bottom is refused."""
    layer = make_layer('type: "Split"')
    bottom = blobs_from(np.random.default_rng(1).standard_normal((2, 2)).astype(np.float32))
    top = setup_layer(layer, bottom, 2)
    check_gradient(layer, bottom, top)
    with pytest.raises(NetError, match="in place"):
        layer.reshape(bottom, [Blob(), bottom[0]])


@pytest.mark.parametrize(("params", "shape"), [
    ("", (2, 60)),
    ("axis: 0", (120,)),
    ("axis: 2", (2, 3, 20)),
    ("axis: 1 end_axis: 2", (2, 12, 5)),
    ("axis: -3 end_axis: -2", (2, 12, 5)),
    ("axis: 3 end_axis: 3", (2, 3, 4, 5)),
])
def test_flatten_shapes(params, shape):
    """Axes axis..end_axis (inclusive, negative from the end) collapse into one."""
    check_flat_order(make_layer(f'type: "Flatten" flatten_param {{ {params} }}'), shape)


def test_flatten_errors():
    """end_axis before axis is a ShapeError; Flatten refuses to run in place."""
    x = np.zeros((2, 3, 4), np.float32)
    layer = make_layer('type: "Flatten" flatten_param { axis: 2 end_axis: 1 }')
    with pytest.raises(ShapeError, match="end_axis"):
        setup_layer(layer, blobs_from(x))
    layer = make_layer('type: "Flatten"')
    (blob,) = blobs_from(x)
    with pytest.raises(NetError, match="in place"):
        layer.reshape([blob], [blob])
