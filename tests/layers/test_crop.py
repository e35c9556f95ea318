"""Crop: Caffe's shapes and offsets against explicit slicing; gradient to bottom[0] only."""

import numpy as np
import pytest

from brewnet.errors import NetError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def crop_reference(x, shape, axis, offsets):
    """Crop by explicit per-axis slices, as Caffe's crop_copy walks them."""
    index = [slice(None)] * axis + [slice(o, o + s) for o, s in zip(offsets, shape[axis:],
                                                                   strict=True)]
    return x[tuple(index)]


CASES = [
    ("", (2, 3, 7, 8), (1, 1, 4, 5), 2, [0, 0]),
    ("offset: 2", (2, 3, 7, 8), (5, 5, 4, 5), 2, [2, 2]),
    ("axis: 1 offset: 1 offset: 2 offset: 3", (2, 4, 7, 8), (9, 2, 4, 5), 1, [1, 2, 3]),
    ("axis: -1 offset: 3", (2, 3, 4, 8), (1, 1, 1, 5), 3, [3]),
    ("axis: 0 offset: 1", (3, 3, 4, 4), (2, 2, 2, 2), 0, [1, 1, 1, 1]),
]


@pytest.mark.parametrize("params,big,small,axis,offsets", CASES)
def test_forward_matches_slicing(params, big, small, axis, offsets):
    """Caffe's Crop: bottom[0]'s axes before axis, bottom[1]'s after; offset once or per axis."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(big).astype(np.float32)
    layer = make_layer(f'type: "Crop" crop_param {{ {params} }}')
    bottom = blobs_from(x, np.zeros(small, np.float32))
    top = setup_layer(layer, bottom)
    expected_shape = big[:axis] + small[axis:]
    assert tuple(top[0].shape) == expected_shape
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, crop_reference(x, expected_shape, axis, offsets))


def test_gradient_reaches_bottom_zero_only():
    """Crop's backward copies the top diff into the cropped window of bottom[0], zero elsewhere;
    bottom[1] supplies only a shape."""
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 4)).astype(np.float32)
    layer = make_layer('type: "Crop" crop_param { offset: 1 offset: 0 }')
    bottom = blobs_from(x, np.zeros((1, 1, 3, 3), np.float32))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])
    bottom[1].diff[...] = 7
    layer.backward(top, [True, True], bottom)
    assert np.all(bottom[1].diff == 7)
    assert np.all(bottom[0].diff[:, :, 0] == 0) and np.all(bottom[0].diff[:, :, 4] == 0)


@pytest.mark.parametrize("params,small,message", [
    ("offset: 2", (1, 1, 4, 4), "exceeds"),
    ("", (1, 1, 6, 2), "exceeds"),
    ("offset: 1 offset: 1 offset: 1", (1, 1, 2, 2), "offset must be given"),
])
def test_bad_crops_are_errors(params, small, message):
    """Caffe checks that every cropped axis fits and that offsets are 0, 1 or one per axis."""
    layer = make_layer(f'type: "Crop" crop_param {{ {params} }}')
    with pytest.raises(NetError, match=message):
        setup_layer(layer, blobs_from(np.zeros((1, 1, 5, 5), np.float32),
                                      np.zeros(small, np.float32)))
