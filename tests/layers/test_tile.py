"""Tile: repeating the block from an axis on."""

import numpy as np
import pytest

from brewnet.errors import NetError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


@pytest.mark.parametrize(("axis", "tiles"), [(1, 3), (0, 2), (-1, 2), (2, 1)])
def test_tile_forward_and_gradient(axis, tiles):
    """top[..., j, ...] along axis = bottom[..., j mod n, ...] (the whole inner block repeats);
    backward sums the copies."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2)).astype(np.float32)
    layer = make_layer(f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    a = axis % 3
    n = x.shape[a]
    expected_shape = list(x.shape)
    expected_shape[a] *= tiles
    assert top[0].data.shape == tuple(expected_shape)
    for idx in np.ndindex(top[0].data.shape):
        src = list(idx)
        src[a] %= n
        assert top[0].data[idx] == x[tuple(src)]
    check_gradient(layer, bottom, top)


def test_tile_needs_positive_tiles():
    """tiles must be positive."""
    with pytest.raises(NetError, match="positive"):
        setup_layer(make_layer('type: "Tile" tile_param { tiles: 0 }'),
                    blobs_from(np.zeros((2, 2), np.float32)))
