"""Softmax: normalized exponentials along one axis, stable for large inputs."""

import math

import numpy as np
import pytest

from brewnet.errors import ShapeError
from tests.gradcheck import blobs_from, check_gradient, forward_backward, make_layer, setup_layer


def softmax_layer(axis: int = 1):
    return make_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}')


def reference(x: np.ndarray, axis: int) -> np.ndarray:
    """Loop over every fibre along ``axis`` with math.exp in float64."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        out[idx] = [e / total for e in exps]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("axis", [1, 3, -1, 0])
def test_forward(axis):
    """y = exp(x)/Σ exp(x) along softmax_param.axis (negative counts from the end)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 4)).astype(np.float32)
    layer = softmax_layer(axis)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, axis), rtol=1e-5, atol=1e-7)


def test_large_inputs_are_stable():
    """Subtracting the maximum keeps exp finite: scores of 1000 give a proper distribution."""
    x = np.array([[1000.0, 1000.0, 990.0], [-1000.0, 0.0, 5.0]], np.float32)
    layer = softmax_layer()
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert np.all(np.isfinite(top[0].data))
    np.testing.assert_allclose(top[0].data, reference(x, 1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axis", [1, 2])
def test_gradient(axis):
    """Backward dx = (dy - Σ dy·y)·y matches numerical gradients."""
    x = np.random.default_rng(1).standard_normal((2, 3, 2)).astype(np.float32)
    layer = softmax_layer(axis)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_in_place():
    """In place gives the same output and gradient as out of place."""
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    layer = softmax_layer()
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, dy)
    (blob,) = blobs_from(x)
    layer.reshape([blob], [blob])
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, top[0].data, rtol=1e-6)
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.diff, bottom[0].diff, rtol=1e-6, atol=1e-7)


def test_bad_axis():
    """An axis outside [-num_axes, num_axes) is a ShapeError naming it."""
    with pytest.raises(ShapeError, match="axis 2"):
        setup_layer(softmax_layer(2), blobs_from(np.zeros((2, 3), np.float32)))
