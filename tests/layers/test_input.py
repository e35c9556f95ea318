"""Input: tops shaped from input_param, then owned by the user."""

import pytest

from brewnet.errors import NetError
from tests.gradcheck import make_layer, setup_layer


def test_one_shape_per_top():
    """shape[i] shapes top i."""
    layer = make_layer('type: "Input" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } }')
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [2, 3] and top[1].shape == [2]


def test_one_shape_for_all_tops():
    """A single shape applies to every top."""
    layer = make_layer('type: "Input" input_param { shape { dim: 4 dim: 1 dim: 28 dim: 28 } }')
    top = setup_layer(layer, [], 3)
    assert all(t.shape == [4, 1, 28, 28] for t in top)


def test_reshape_keeps_the_users_shape():
    """After the user reshapes a top, the layer's reshape (net.reshape) does not reset it."""
    layer = make_layer('type: "Input" input_param { shape { dim: 4 dim: 3 } }')
    top = setup_layer(layer, [], 1)
    top[0].reshape(10, 3)
    top[0].data[...] = 1
    layer.reshape([], top)
    layer.forward([], top)
    assert top[0].shape == [10, 3] and top[0].data.sum() == 30


def test_shape_count_mismatch():
    """Two shapes for three tops is an error."""
    layer = make_layer('type: "Input" input_param { shape { dim: 1 } shape { dim: 2 } }')
    with pytest.raises(NetError, match="2 shapes for 3 tops"):
        setup_layer(layer, [], 3)


@pytest.mark.parametrize("dims", ["dim: 2 dim: -2", "dim: -1"])
def test_negative_dim_names_the_layer(dims):
    """A negative dim (Caffe's Blob::Reshape CHECK_GE(dim, 0)) is a NetError naming the layer."""
    layer = make_layer(f'name: "data" type: "Input" input_param {{ shape {{ {dims} }} }}')
    with pytest.raises(NetError, match="layer 'data' .*negative dim"):
        setup_layer(layer, [], 1)


def test_zero_dim_is_an_empty_blob_and_too_many_axes_an_error():
    """A 0 dim is allowed (count 0); more than 32 axes is a NetError naming the layer."""
    layer = make_layer('type: "Input" input_param { shape { dim: 0 dim: 3 } }')
    assert setup_layer(layer, [], 1)[0].shape == [0, 3]
    many = " ".join(["dim: 1"] * 33)
    layer = make_layer(f'name: "data" type: "Input" input_param {{ shape {{ {many} }} }}')
    with pytest.raises(NetError, match="layer 'data' .*33 axes"):
        setup_layer(layer, [], 1)
