"""Concat and Slice: joining and cutting blobs along one axis."""

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.errors import NetError, ShapeError
from brewnet.net import TRAIN, Net
from brewnet.proto import caffe_pb2
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _concat_reference(arrays, axis):
    """Element by element: top index along axis = offset of the bottom + its own index."""
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.zeros(shape, np.float32)
    offset = 0
    for a in arrays:
        for idx in np.ndindex(a.shape):
            t = list(idx)
            t[axis] += offset
            out[tuple(t)] = a[idx]
        offset += a.shape[axis]
    return out


@pytest.mark.parametrize(("params", "axis"), [
    ("", 1), ("axis: 0", 0), ("axis: -1", 2), ("concat_dim: 2", 2)
])
def test_concat_forward_and_gradient(params, axis):
    """Concat joins along concat_param.axis (default 1; legacy concat_dim wins when set);
    backward gives each bottom its section of the diff."""
    shapes = [[2, 3, 2], [2, 3, 2]]
    shapes[1][axis] = 1
    arrays = [_rand(*shapes[0], seed=1), _rand(*shapes[1], seed=2)]
    layer = make_layer(f'type: "Concat" concat_param {{ {params} }}')
    bottom = blobs_from(*arrays)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, _concat_reference(arrays, axis))
    check_gradient(layer, bottom, top)


def test_concat_errors():
    """Bottoms that differ off the concat axis, and a top equal to a bottom, are refused."""
    layer = make_layer('type: "Concat"')
    with pytest.raises(ShapeError, match="all axes except"):
        setup_layer(layer, blobs_from(_rand(2, 3), _rand(3, 3)))
    bottom = blobs_from(_rand(2, 3))
    with pytest.raises(NetError, match="in place"):
        layer.reshape(bottom, [bottom[0]])
    with pytest.raises(ShapeError, match="out of range"):
        setup_layer(make_layer('type: "Concat" concat_param { axis: 2 }'),
                    blobs_from(_rand(2, 3)))
    with pytest.raises(NetError, match="not both"):
        setup_layer(make_layer('type: "Concat" concat_param { axis: 0 concat_dim: 1 }'),
                    blobs_from(_rand(2, 3)))


@pytest.mark.parametrize(("params", "num_top", "sizes", "axis"), [
    ("", 3, [2, 2, 2], 1),
    ("slice_point: 1 slice_point: 4", 3, [1, 3, 2], 1),
    ("axis: 0 slice_point: 1", 2, [1, 3], 0),
    ("axis: -1", 2, [1, 1], 2),
    ("slice_dim: 2", 1, [2], 2),
])
def test_slice_forward_and_gradient(params, num_top, sizes, axis):
    """Slice cuts at slice_point (or into equal parts) along slice_param.axis (legacy
    slice_dim); backward reassembles the diffs in order."""
    x = _rand(4, 6, 2, seed=3)
    layer = make_layer(f'type: "Slice" slice_param {{ {params} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    assert [t.data.shape[axis] for t in top] == sizes
    # reference: the tops, concatenated by the independent loop, rebuild the bottom
    np.testing.assert_array_equal(_concat_reference([t.data for t in top], axis), x)
    check_gradient(layer, bottom, top)


def test_slice_errors():
    """Wrong slice_point count, non-increasing points and uneven equal splits are refused."""
    bottom = blobs_from(_rand(2, 5))
    with pytest.raises(NetError, match="one fewer"):
        setup_layer(make_layer('type: "Slice" slice_param { slice_point: 2 }'), bottom, 3)
    with pytest.raises(ShapeError, match="increase strictly"):
        setup_layer(make_layer('type: "Slice" slice_param { slice_point: 3 slice_point: 3 }'),
                    bottom, 3)
    with pytest.raises(ShapeError, match="increase strictly"):
        setup_layer(make_layer('type: "Slice" slice_param { slice_point: 5 }'), bottom, 2)
    with pytest.raises(ShapeError, match="evenly"):
        setup_layer(make_layer('type: "Slice"'), bottom, 2)
    with pytest.raises(NetError, match="not both"):
        setup_layer(make_layer('type: "Slice" slice_param { axis: 1 slice_dim: 1 }'), bottom, 1)


NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 6 } } }
layer { name: "sel" type: "Input" top: "sel" input_param { shape { dim: 4 } } }
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 4 dim: 2 } } }
layer { name: "cut" type: "Slice" bottom: "x" top: "a" top: "b" top: "c"
        slice_param { slice_point: 2 slice_point: 4 } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "p" top: "s"
        eltwise_param { coeff: 1 coeff: 2 coeff: 1 } }
layer { name: "join" type: "Concat" bottom: "s" bottom: "a" top: "j" }
layer { name: "shape" type: "Reshape" bottom: "j" top: "r"
        reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
layer { name: "keep" type: "Filter" bottom: "r" bottom: "sel" top: "f" }
layer { name: "tot" type: "Reduction" bottom: "f" top: "loss" loss_weight: 1 }
layer { name: "quiet" type: "Silence" bottom: "c" }
"""


def test_layers_compile_and_run_in_a_net():
    """Slice, Eltwise, Concat, Reshape, Filter, Reduction, Silence and Parameter compile in a
    net (blob counts, shapes) and give the loss and gradients the arithmetic says."""
    net = Net(text_format.Parse(NET, caffe_pb2.NetParameter()), TRAIN)
    x = _rand(4, 6, seed=5)
    net.blobs["x"].data[...] = x
    net.blobs["sel"].data[...] = [1, 0, 1, 1]
    net.params["p"][0].data[...] = 1
    net.forward()
    assert net.blobs["r"].data.shape == (4, 2, 2)
    assert net.blobs["f"].data.shape == (3, 2, 2)
    s = x[:, 0:2] + 2 * x[:, 2:4] + 1
    j = np.concatenate([s, x[:, 0:2]], axis=1)
    np.testing.assert_allclose(float(net.blobs["loss"].data), j[[0, 2, 3]].sum(), rtol=1e-5)
    net.backward()
    grad = np.zeros((4, 6), np.float32)
    grad[[0, 2, 3], 0:2] = 2  # through s and through the direct copy of a
    grad[[0, 2, 3], 2:4] = 2
    np.testing.assert_array_equal(net.blobs["x"].diff, grad)
    np.testing.assert_array_equal(net.params["p"][0].diff, (grad[:, 0:2] > 0) * 1.0)
