"""SPP: Caffe's pyramid levels (GetPoolingParam) against direct pooling loops; gradients."""

import math

import numpy as np
import pytest

from brewnet.errors import NetError
from brewnet.layers.spp import level_geometry
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer
from tests.layers.test_pooling import distinct, pool_reference


def spp_reference(x, height, method):
    """Caffe's SPP: per level kernel ceil(in/2^l), pad (kernel*2^l - in + 1)//2, stride kernel;
    pooled, flattened and concatenated along axis 1."""
    n, _, h, w = x.shape
    parts = []
    for level in range(height):
        bins = 2 ** level
        kh, kw = math.ceil(h / bins), math.ceil(w / bins)
        ph, pw = (kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2
        top, _ = pool_reference(x, (kh, kw), (kh, kw), (ph, pw), method)
        parts.append(top.reshape(n, -1))
    return np.concatenate(parts, axis=1)


def test_level_geometry_is_caffes():
    """GetPoolingParam: 13x13 at 4 bins -> kernel 4, pad (16 - 13 + 1) // 2 = 2."""
    assert level_geometry(0, 13, 13) == ((13, 13), (0, 0))
    assert level_geometry(2, 13, 13) == ((4, 4), (2, 2))
    assert level_geometry(1, 7, 10) == ((4, 5), (1, 0))


CASES = [((2, 3, 8, 8), 3), ((1, 2, 13, 13), 3), ((2, 2, 7, 10), 2), ((1, 2, 6, 9), 3)]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("shape,height", CASES)
def test_forward_matches_pooled_levels(method, shape, height):
    """Caffe's SPP top is the concatenation of every level's flattened pooling."""
    x = distinct(shape)
    layer = make_layer(f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {method} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = spp_reference(x, height, method)
    assert tuple(top[0].shape) == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_gradients_match_numerical(method):
    """SPP's backward sums the gradients of all pyramid levels (Caffe's split)."""
    layer = make_layer(f'type: "SPP" spp_param {{ pyramid_height: 3 pool: {method} }}')
    bottom = blobs_from(distinct((1, 2, 6, 7)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_height_one_keeps_the_pooling_shape_and_follows_the_input_size():
    """With pyramid_height 1 Caffe passes the single (N, C, 1, 1) pooling top through; the
    levels are rebuilt when the input size changes."""
    layer = make_layer('type: "SPP" spp_param { pyramid_height: 1 }')
    x = distinct((2, 3, 5, 4))
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert tuple(top[0].shape) == (2, 3, 1, 1)
    np.testing.assert_array_equal(top[0].data[..., 0, 0], x.max(axis=(2, 3)))
    bottom[0].reshape(2, 3, 9, 9)
    bottom[0].data[...] = distinct((2, 3, 9, 9))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[..., 0, 0], bottom[0].data.max(axis=(2, 3)))


def test_too_deep_a_pyramid_is_an_error():
    """Caffe's Pooling needs pad < kernel: 5x5 at 4 bins gives kernel 2, pad 2, an error."""
    layer = make_layer('name: "spp" type: "SPP" spp_param { pyramid_height: 3 }')
    with pytest.raises(NetError, match="layer 'spp'.*pyramid level 2"):
        setup_layer(layer, blobs_from(np.zeros((1, 1, 5, 5), np.float32)))
