"""PReLU: per-channel (or shared) learned negative slopes, Caffe's default slope 0.25."""

import numpy as np
import pytest

from brewnet.errors import ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def sample(shape=(2, 3, 2, 2), seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x[np.abs(x) < 0.05] += 0.1  # clear of the kink
    return x


def reference(x: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        a = slopes.reshape(-1)[0 if slopes.size == 1 else idx[1]]
        out[idx] = max(0.0, x[idx]) + a * min(0.0, x[idx])
    return out


def test_default_slope_is_quarter_per_channel():
    """Without a filler every slope is 0.25; the blob has one slope per channel (axis 1)."""
    layer = make_layer('type: "PReLU"')
    top = setup_layer(layer, blobs_from(sample()))
    assert layer.blobs[0].data.shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    assert top[0].data.shape == (2, 3, 2, 2)


def test_channel_shared_is_one_scalar():
    """channel_shared: one slope in a 0-axis blob (Caffe's vector<int>(0) shape)."""
    layer = make_layer('type: "PReLU" prelu_param { channel_shared: true }')
    setup_layer(layer, blobs_from(sample()))
    assert layer.blobs[0].data.shape == ()


@pytest.mark.parametrize("shared", [False, True])
def test_forward(shared):
    """y = max(0, x) + a_c·min(0, x)."""
    x = sample()
    layer = make_layer(f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} '
                       'filler { type: "uniform" min: -1 max: 1 } }')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, layer.blobs[0].data), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("shared", [False, True])
def test_gradient(shared):
    """Backward to x (dy or a·dy) and to the slopes (Σ dy·x over x <= 0) match numerics."""
    layer = make_layer(f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} '
                       'filler { type: "uniform" min: -1 max: 1 } }')
    bottom = blobs_from(sample((2, 3, 3)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, kink=0.0, kink_range=0.02)


def test_in_place_matches_out_of_place():
    """In place, the input is kept for backward, so outputs and both gradients match."""
    x = sample()
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    results = []
    for in_place in (False, True):
        layer = make_layer('type: "PReLU" prelu_param { filler { type: "constant" value: -0.3 } }')
        (blob,) = blobs_from(x)
        top = [blob] if in_place else setup_layer(layer, [blob])
        if in_place:
            layer.setup([blob], top)
            layer.reshape([blob], top)
            layer.param_propagate_down = [True]
        layer.forward([blob], top)
        out = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], [blob])
        results.append((out, blob.diff.copy(), layer.blobs[0].diff.copy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_param_diff_accumulates():
    """Backward adds to the slope diff (gradients accumulate over iter_size)."""
    layer = make_layer('type: "PReLU"')
    bottom = blobs_from(sample())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [False], bottom)
    once = layer.blobs[0].diff.copy()
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once, rtol=1e-6)


def test_needs_two_axes():
    """A 1-axis bottom has no channel axis: a ShapeError naming the layer."""
    with pytest.raises(ShapeError, match="at least 2"):
        setup_layer(make_layer('type: "PReLU"'), blobs_from(np.zeros(4, np.float32)))
