"""Parameter: a learned blob as a top."""

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import ShapeError
from tests.gradcheck import check_gradient, make_layer, setup_layer


def test_parameter_exposes_learned_blob():
    """Parameter's top is its one blob of parameter_param.shape (zeros at first); backward
    adds the top diff into the blob's diff."""
    layer = make_layer('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }')
    top = setup_layer(layer, [], 1)
    assert layer.blobs[0].data.shape == (2, 3) and np.all(layer.blobs[0].data == 0)
    layer.blobs[0].data[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data)
    layer.blobs[0].diff[...] = 1
    top[0].diff[...] = 2
    layer.backward(top, [], [])
    assert np.all(layer.blobs[0].diff == 3)
    check_gradient(layer, [], top)


def test_parameter_keeps_given_blob_and_checks_shape():
    """A blob given by the net (loaded weights) is kept when its shape fits, refused otherwise."""
    layer = make_layer('type: "Parameter" parameter_param { shape { dim: 4 } }')
    given = Blob((4,))
    given.data[...] = 1
    layer.blobs = [given]
    top = setup_layer(layer, [], 1)
    layer.forward([], top)
    assert np.all(top[0].data == 1)
    layer = make_layer('type: "Parameter" parameter_param { shape { dim: 4 } }')
    layer.blobs = [Blob((3,))]
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        setup_layer(layer, [], 1)
