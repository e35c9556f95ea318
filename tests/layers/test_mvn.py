"""MVN: per-sample (and per-channel unless across_channels) mean removal and division by
std + eps (Caffe adds eps to the standard deviation), with Caffe's backward."""

import math

import numpy as np
import pytest

from tests.gradcheck import (
    blobs_from,
    check_gradient,
    forward_backward,
    make_layer,
    run_in_place,
    setup_layer,
)


def sample(shape=(2, 3, 2, 2), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3 + 2).astype(np.float32)


def reference(x: np.ndarray, variance: bool, across: bool, eps: float) -> np.ndarray:
    """Loop over the normalization groups, statistics in float64."""
    out = np.empty(x.shape)
    groups = [(n,) for n in range(x.shape[0])] if across else [
        (n, c) for n in range(x.shape[0]) for c in range(x.shape[1])]
    for g in groups:
        values = [float(v) for v in x[g].reshape(-1)]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        out[g] = (x[g] - mean) / (std + eps) if variance else x[g] - mean
    return out


def mvn_layer(variance: bool, across: bool, eps: float = 1e-9):
    return make_layer(f'type: "MVN" mvn_param {{ normalize_variance: {str(variance).lower()} '
                      f'across_channels: {str(across).lower()} eps: {eps} }}')


MODES = [(True, False), (True, True), (False, False), (False, True)]


@pytest.mark.parametrize("variance,across", MODES)
def test_forward(variance, across):
    """Mean (and std) per (n, c) over spatial, or per n over (C, spatial)."""
    x = sample()
    layer = mvn_layer(variance, across)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, variance, across, 1e-9), rtol=1e-4,
                               atol=1e-5)


def test_eps_is_added_to_the_std():
    """A large eps shows where it goes: y = (x − mean)/(std + eps), not /sqrt(var + eps)."""
    x = sample()
    layer = mvn_layer(True, False, eps=0.5)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, True, False, 0.5), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("variance,across", MODES)
def test_gradient(variance, across):
    """Caffe's backward matches numerical gradients (eps negligible at 1e-9)."""
    layer = mvn_layer(variance, across)
    bottom = blobs_from(sample((2, 2, 3)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=2e-2)


def test_in_place_matches_out_of_place():
    """top == bottom: backward reads only y and the kept std, so results match."""
    x, dy = sample(), sample(seed=3)
    bottom = blobs_from(x)
    top = forward_backward(mvn_layer(True, False), bottom, dy)
    output, grad = run_in_place(mvn_layer(True, False), x, dy)
    np.testing.assert_allclose(output, top[0].data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, bottom[0].diff, rtol=1e-5, atol=1e-6)
