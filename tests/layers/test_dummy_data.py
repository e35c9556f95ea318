"""DummyData: tops shaped by shape or legacy dims and filled by fillers."""

import numpy as np
import pytest

from brewnet import rng
from brewnet.errors import NetError
from tests.gradcheck import make_layer, setup_layer


def dummy(params: str):
    return make_layer(f'type: "DummyData" dummy_data_param {{ {params} }}')


def test_shape_per_top_and_filler_per_top():
    """Top i gets shape[i] and data_filler[i]; constants are written at setup."""
    layer = dummy('shape { dim: 2 dim: 3 } shape { dim: 4 } '
                  'data_filler { type: "constant" value: 1.5 } '
                  'data_filler { type: "constant" value: -2 }')
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [2, 3] and top[1].shape == [4]
    assert np.all(top[0].data == 1.5) and np.all(top[1].data == -2)


def test_default_is_zero_and_one_shape_for_all():
    """No filler means constant 0; one shape serves every top."""
    layer = dummy("shape { dim: 3 dim: 2 }")
    top = setup_layer(layer, [], 2)
    layer.forward([], top)
    assert all(t.shape == [3, 2] and np.all(t.data == 0) for t in top)


def test_legacy_dims():
    """num/channels/height/width give 4-D shapes; a single value serves every top."""
    layer = dummy("num: 5 num: 6 channels: 2 height: 3 width: 4")
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [5, 2, 3, 4] and top[1].shape == [6, 2, 3, 4]


def test_random_filler_refills_every_forward_constant_does_not():
    """A non-constant filler draws new values each forward; a constant top is left alone."""
    layer = dummy('shape { dim: 50 } data_filler { type: "gaussian" std: 1 } '
                  'data_filler { type: "constant" value: 3 }')
    top = setup_layer(layer, [], 2)
    rng.set_random_seed(1)
    layer.forward([], top)
    first = top[0].data.copy()
    layer.forward([], top)
    assert first.std() > 0.5 and not np.array_equal(first, top[0].data)
    assert np.all(top[1].data == 3)
    top[1].data[...] = 7  # Caffe fills constants once, at setup
    layer.forward([], top)
    assert np.all(top[1].data == 7)


@pytest.mark.parametrize("params", [
    "shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1",
    "shape { dim: 1 } shape { dim: 2 }",
    "num: 1 channels: 1 height: 1",
    'shape { dim: 1 } data_filler { } data_filler { }',
])
def test_inconsistent_params(params):
    """Mixed shape/legacy fields, or counts that fit neither one nor every top, are errors."""
    with pytest.raises(NetError, match="dummy_data_param"):
        setup_layer(dummy(params), [], 3)


def test_bad_filler_names_the_layer_at_setup():
    """An unknown data_filler type fails at setup (as Caffe's GetFiller), naming the layer;
    a filler that cannot fill the top's shape fails at forward, also naming it."""
    layer = make_layer('name: "d" type: "DummyData" dummy_data_param { shape { dim: 2 } '
                       'data_filler { type: "xavir" } }')
    with pytest.raises(NetError, match="layer 'd' .*data_filler: unknown filler type 'xavir'"):
        setup_layer(layer, [], 1)
    layer = make_layer('name: "d" type: "DummyData" dummy_data_param { shape { dim: 2 } '
                       'data_filler { type: "bilinear" } }')
    top = setup_layer(layer, [], 1)
    with pytest.raises(NetError, match="layer 'd' .*data_filler: bilinear filler needs a 4-d"):
        layer.forward([], top)


def test_negative_dim_names_the_layer():
    """A negative dim is a NetError naming the layer, not a bare ValueError."""
    with pytest.raises(NetError, match="layer 'd' .*negative dim"):
        setup_layer(make_layer('name: "d" type: "DummyData" dummy_data_param { '
                               'shape { dim: 2 dim: -3 } }'), [], 1)
