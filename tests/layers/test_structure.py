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


def test_split_tops_share_the_bottom_data_not_its_diff():
    """As Caffe's ShareData, every top's data is the bottom's array (no copy, no memory of its
    own), also after the bottom changes shape; each top and the bottom keep diffs of their
    own, as Caffe's."""
    layer = make_layer('type: "Split"')
    bottom = blobs_from(np.arange(6, dtype=np.float32).reshape(2, 3))
    top = setup_layer(layer, bottom, 3)
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data for t in top)
    diffs = [bottom[0].diff] + [t.diff for t in top]
    assert not any(np.shares_memory(diffs[i], diffs[j]) for i in range(4) for j in range(i))
    bottom[0].reshape(4, 5)
    layer.run_forward(bottom, top)
    assert all(t.data is bottom[0].data and t.diff.shape == (4, 5) for t in top)
    assert not np.shares_memory(top[0].diff, bottom[0].diff)


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
    weight in its diff, which backward adds to the other readers' gradients: the gradient is
    right on every pass."""
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


def _net(text):
    from brewnet.net import TRAIN, Net
    from brewnet.proto import caffe_pb2
    from brewnet.proto.textio import parse_text

    return Net(parse_text(text, caffe_pb2.NetParameter()), phase=TRAIN)


def test_split_whose_first_reader_sends_no_gradient_does_not_accumulate():
    """A blob read first by Accuracy (no backward) and then by a loss: the blob's gradient is
    the loss's alone, the same on every iteration (Caffe sums the split tops' diffs, and
    Accuracy's top diff stays as it was, zero); a diff shared with top 0 would keep the
    previous iteration's sum and grow."""
    net = _net("""
    layer { name: "in" type: "Input" top: "x" top: "label"
      input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
      inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["label"].data[...] = [0, 1, 2, 1]
    grads = []
    for _ in range(3):
        net.clear_param_diffs()
        net.forward()
        net.backward()
        grads.append(net.params["ip"][0].diff.copy())
    np.testing.assert_array_equal(grads[1], grads[0])
    np.testing.assert_array_equal(grads[2], grads[0])


def test_split_backward_twice_after_one_forward_gives_the_same_gradient():
    """pycaffe's net.backward() run again without a forward: a loss-weighted split blob's
    gradient is the same both times (the weight stays in the split's top 0 diff)."""
    net = _net("""
    force_backward: true
    layer { name: "in" type: "Input" top: "x" top: "y"
      input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
    layer { name: "p" type: "Power" bottom: "x" top: "p" loss_weight: 0.5
      power_param { scale: 2 } }
    layer { name: "l2" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "l2" }
    """)
    rng = np.random.default_rng(3)
    net.blobs["x"].data[...] = rng.standard_normal((2, 3))
    net.blobs["y"].data[...] = rng.standard_normal((2, 3))
    net.forward()
    first = net.backward()["x"].copy()
    np.testing.assert_array_equal(net.backward()["x"], first)
