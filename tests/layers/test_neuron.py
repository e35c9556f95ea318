"""Neuron layers: ReLU (Caffe's rectifier with negative_slope), Sigmoid and TanH, in place and
not."""

import math

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


# -- Sigmoid and TanH -----------------------------------------------------------------------

SMOOTH = {"Sigmoid": lambda v: 1 / (1 + math.exp(-v)), "TanH": math.tanh}
SMOOTH_SLOPE = {"Sigmoid": lambda y: y * (1 - y), "TanH": lambda y: 1 - y * y}


def smooth_reference(kind: str, x: np.ndarray) -> np.ndarray:
    """Elementwise in float64, one value at a time."""
    f = SMOOTH[kind]
    return np.array([f(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_forward(kind):
    """Sigmoid is 1/(1+exp(-x)) and TanH is tanh(x), elementwise, in float32."""
    x = sample((2, 3, 4)) * 3
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32 and top[0].data.shape == x.shape
    np.testing.assert_allclose(top[0].data, smooth_reference(kind, x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_forward_saturates_without_overflow(kind):
    """Large |x| (to ±FLT_MAX) gives the limits 0/1 (Sigmoid) or ±1 (TanH), finite and
    without overflow warnings."""
    big = np.float32(np.finfo(np.float32).max)
    x = np.array([-big, -1e4, -100, -30, 0, 30, 100, 1e4, big], np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    with np.errstate(all="raise"):
        layer.forward(bottom, top)
    y = top[0].data
    low = 0.0 if kind == "Sigmoid" else -1.0
    np.testing.assert_allclose(y[[0, 1, 2, 6, 7, 8]], [low, low, low, 1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(y, smooth_reference(kind, x.clip(-100, 100)), atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_gradient(kind):
    """Backward dy·y·(1-y) (Sigmoid) and dy·(1-y²) (TanH) match numerical gradients."""
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(sample((2, 3, 2)) * 2)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_backward_formula(kind):
    """The bottom diff is exactly the top diff times the slope computed from the output."""
    x = sample((3, 5)) * 2
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    y = top[0].data.astype(np.float64)
    np.testing.assert_allclose(bottom[0].diff, dy * SMOOTH_SLOPE[kind](y), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_in_place_matches_out_of_place(kind):
    """Backward reads only the output, so top == bottom gives the same output and gradient."""
    x = sample() * 2
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)

    inplace = make_layer(f'type: "{kind}"')
    (blob,) = blobs_from(x)
    inplace.setup([blob], [blob])
    inplace.reshape([blob], [blob])
    inplace.forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, top[0].data)
    blob.diff[...] = dy
    inplace.backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, bottom[0].diff)
    assert inplace.can_run_in_place


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_reshape_follows_bottom(kind):
    """A new bottom shape reshapes the top and the backward scratch."""
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(sample((2, 3)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(4, 1, 5)
    bottom[0].data[...] = sample((4, 1, 5))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert top[0].data.shape == bottom[0].diff.shape == (4, 1, 5)
    np.testing.assert_allclose(top[0].data, smooth_reference(kind, bottom[0].data), rtol=1e-5,
                               atol=1e-7)
