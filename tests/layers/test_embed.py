"""Embed: row lookup into a learned table."""

import numpy as np
import pytest

from brewnet.errors import NetError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer

LAYER = ('type: "Embed" embed_param {{ num_output: 3 input_dim: 5 bias_term: {bias} '
         'weight_filler {{ type: "gaussian" }} bias_filler {{ type: "gaussian" }} }}')


@pytest.mark.parametrize("bias", [True, False])
def test_embed_forward_and_gradient(bias):
    """top[i, j, :] = W[x[i, j]] (+ b), W of shape (input_dim, num_output); the gradient to W
    and b agrees numerically, repeated indices accumulating."""
    x = np.array([[0, 4, 2], [2, 2, 1]], np.float32)
    layer = make_layer(LAYER.format(bias=str(bias).lower()))
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    assert [b.data.shape for b in layer.blobs] == [(5, 3)] + ([(3,)] if bias else [])
    layer.forward(bottom, top)
    assert top[0].data.shape == (2, 3, 3)
    w = layer.blobs[0].data
    for i, j in np.ndindex(x.shape):
        expected = w[int(x[i, j])] + (layer.blobs[1].data if bias else 0)
        np.testing.assert_allclose(top[0].data[i, j], expected, rtol=1e-6)
    check_gradient(layer, bottom, top, check_bottom=[])


def test_embed_rejects_bad_indices_and_index_gradient():
    """Indices outside [0, input_dim) or not whole numbers are errors naming the layer; a
    gradient to the indices is refused."""
    layer = make_layer(LAYER.format(bias="true"))
    for bad in (5, -1, 1.5):
        bottom = blobs_from(np.array([0, bad], np.float32))
        top = setup_layer(layer, bottom)
        with pytest.raises(NetError, match=r"embed.*not an integer index in \[0, 5\)"):
            layer.forward(bottom, top)
    bottom = blobs_from(np.array([0, 1], np.float32))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    with pytest.raises(NetError, match="indices"):
        layer.backward(top, [True], bottom)
    assert not layer.allow_force_backward(0)


def test_embed_needs_sizes():
    """num_output and input_dim must be given."""
    with pytest.raises(NetError, match="input_dim"):
        setup_layer(make_layer('type: "Embed" embed_param { num_output: 2 }'),
                    blobs_from(np.zeros(2, np.float32)))
