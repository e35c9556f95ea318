"""ReLU: Caffe's rectifier with negative_slope, in place and not."""

import numpy as np
import pytest

from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def relu_layer(slope: float = 0.0):
    return make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}')


def sample(shape=(2, 3, 4)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def reference(x: np.ndarray, slope: float) -> np.ndarray:
    out = np.empty_like(x)
    for i, v in enumerate(x.reshape(-1)):
        out.reshape(-1)[i] = v if v > 0 else slope * v
    return out


@pytest.mark.parametrize("slope", [0.0, 0.1, 2.0])
def test_forward(slope):
    """y = max(x, 0) + negative_slope·min(x, 0)."""
    x = sample()
    layer = relu_layer(slope)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, slope), rtol=1e-6)
    assert top[0].data.dtype == np.float32


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_gradient(slope):
    """Backward is dy where x > 0 and negative_slope·dy elsewhere (kink at 0 skipped)."""
    layer = relu_layer(slope)
    bottom = blobs_from(sample((2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, kink=0.0, kink_range=0.02)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_in_place_matches_out_of_place(slope):
    """With top == bottom the forward rewrites the blob and the backward, reading the output's
    sign, gives the same gradient as the out-of-place layer."""
    x = sample()
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    layer = relu_layer(slope)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)

    inplace = relu_layer(slope)
    (blob,) = blobs_from(x)
    inplace.setup([blob], [blob])
    inplace.reshape([blob], [blob])
    inplace.forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, top[0].data)
    blob.diff[...] = dy
    inplace.backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, bottom[0].diff)
    assert relu_layer().can_run_in_place


def test_no_propagate_down_leaves_bottom_diff():
    """propagate_down false writes nothing into the bottom diff."""
    layer = relu_layer()
    bottom = blobs_from(sample())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    bottom[0].diff[...] = 5
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 5)
