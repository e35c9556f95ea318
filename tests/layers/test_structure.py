"""Split and Flatten: layers that copy values without changing them."""

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_flat_order, check_gradient, make_layer, setup_layer


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_split_copies_forward_and_sums_backward(num_top):
    """Every top holds the bottom's values; the bottom's diff is the sum of the tops' diffs
    (what it held before the consumers' backward does not count)."""
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    layer = make_layer('type: "Split"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    bottom[0].diff[...] = 100  # stale, from an earlier iteration
    for i, t in enumerate(top):
        np.testing.assert_array_equal(t.data, x)
        t.diff[...] = i + 1
    layer.backward(top, [True], bottom)
    assert np.all(bottom[0].diff == sum(range(1, num_top + 1)))


def test_split_tops_share_the_bottom_data_and_top_0_its_diff():
    """As Caffe's ShareData, every top's data is the bottom's array (no copy, no memory of its
    own), also after the bottom changes shape; top 0 also holds the bottom's diff, the other
    tops diffs of their own."""
    layer = make_layer('type: "Split"')
    bottom = blobs_from(np.arange(6, dtype=np.float32).reshape(2, 3))
    top = setup_layer(layer, bottom, 3)
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data for t in top)
    assert top[0].diff is bottom[0].diff
    assert not any(np.shares_memory(top[i].diff, top[j].diff) for i, j in ((0, 1), (0, 2),
                                                                          (1, 2)))
    bottom[0].reshape(4, 5)
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data and t.diff.shape == (4, 5) for t in top)
    assert top[0].diff is bottom[0].diff


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


def test_split_of_a_loss_weighted_blob_keeps_its_weight_every_iteration():
    """A blob with a loss weight that another layer also reads: the split's top 0 carries the
    weight and shares the bottom's diff, which backward overwrites with the sum; the weight
    is written again before every forward, so the gradient is right on every pass (Caffe,
    writing it once at setup, could not share this diff)."""
    from brewnet.net import TRAIN, Net
    from brewnet.proto import caffe_pb2
    from brewnet.proto.textio import parse_text

    text = """
    force_backward: true
    layer { name: "in" type: "Input" top: "x" top: "y"
      input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
    layer { name: "p" type: "Power" bottom: "x" top: "p" loss_weight: 0.5
      power_param { scale: 2 } }
    layer { name: "l2" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "l2" }
    """
    net = Net(parse_text(text, caffe_pb2.NetParameter()), phase=TRAIN)
    assert any(s.layer.type == "Split" for s in net.plan.steps)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal((2, 3)).astype(np.float32)
        y = rng.standard_normal((2, 3)).astype(np.float32)
        net.blobs["x"].data[...] = x
        net.blobs["y"].data[...] = y
        net.forward()
        net.backward()
        # L = 0.5·Σ2x + Σ(2x − y)²/(2·2): dL/dx = 2·(0.5 + (2x − y)/2)
        np.testing.assert_allclose(net.blobs["x"].diff, 2 * (0.5 + (2 * x - y) / 2),
                                   rtol=1e-6)
