"""Reshape: Caffe's 0 / -1 dims and the axis / num_axes window."""

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_flat_order, check_gradient, make_layer, setup_layer


def _layer(params):
    return make_layer(f'type: "Reshape" reshape_param {{ {params} }}')


@pytest.mark.parametrize(("params", "shape"), [
    ("shape { dim: 0 dim: -1 }", (2, 60)),
    ("shape { dim: -1 }", (120,)),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", (2, 3, 4, 5)),
    ("shape { dim: 6 dim: -1 dim: 4 }", (6, 5, 4)),
    ("shape { dim: 5 dim: 0 dim: -1 }", (5, 3, 8)),
    ("shape { dim: 2 dim: 3 dim: 20 }", (2, 3, 20)),
    ("axis: 1 num_axes: 0 shape { dim: 1 }", (2, 1, 3, 4, 5)),
    ("axis: -1 num_axes: 0 shape { dim: 1 }", (2, 3, 4, 5, 1)),
    ("axis: 0 num_axes: 0 shape { dim: 1 }", (1, 2, 3, 4, 5)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 12, 5)),
    ("axis: -4 num_axes: 2 shape { dim: 0 dim: 2 dim: -1 }", (2, 3, 2, 2, 5)),
    ("axis: 2 shape { dim: 0 dim: 5 }", (2, 3, 4, 5)),
    ("axis: 1 num_axes: 1 shape { dim: 3 dim: 1 }", (2, 3, 1, 4, 5)),
])
def test_reshape_shapes_and_values(params, shape):
    """0 copies the bottom dim at its position (counted from axis), -1 is inferred, axes
    outside [axis, axis + num_axes) are kept (negative axis counts from after the last axis);
    values keep their flat order in both passes."""
    check_flat_order(_layer(params), shape)


def test_reshape_gradient():
    """Numerical gradients agree."""
    layer = _layer("shape { dim: -1 dim: 2 }")
    bottom = blobs_from(np.random.default_rng(0).standard_normal((2, 3, 2)).astype(np.float32))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


@pytest.mark.parametrize(("params", "error", "match"), [
    ("shape { dim: -1 dim: -1 }", NetError, "at most one"),
    ("shape { dim: 7 dim: -1 }", ShapeError, "not divisible"),
    ("shape { dim: 7 dim: 3 }", ShapeError, "120"),
    ("axis: 5 shape { dim: 1 }", ShapeError, "out of range"),
    ("axis: -6 shape { dim: 1 }", ShapeError, "out of range"),
    ("axis: 2 num_axes: 3 shape { dim: -1 }", ShapeError, "reaches past"),
    ("axis: 3 shape { dim: 0 dim: 0 }", ShapeError, "no axis"),
    ("shape { dim: -2 dim: 1 }", NetError, "below -1"),
])
def test_reshape_errors(params, error, match):
    """Two -1 dims, a count that does not match, axis/num_axes out of range and a 0 with no
    bottom axis to copy are errors naming the layer."""
    bottom = blobs_from(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(error, match=match) as info:
        setup_layer(_layer(params), bottom)
    assert "reshape" in str(info.value)
