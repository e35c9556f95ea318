"""Fillers: statistics of large draws and Caffe's exact formulas."""

import math

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet import rng
from brewnet.errors import NetError
from brewnet.layers.fillers import fill
from brewnet.proto import caffe_pb2


def filler(text: str = "") -> caffe_pb2.FillerParameter:
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def test_default_is_constant_zero():
    """An empty FillerParameter is Caffe's constant 0."""
    values = fill(filler(), (3, 4))
    assert values.dtype == np.float32 and values.shape == (3, 4) and not values.any()


def test_constant_value():
    """constant fills every element with value."""
    assert np.all(fill(filler('type: "constant" value: 2.5'), (5,)) == 2.5)


def test_uniform_bounds_and_mean():
    """uniform draws from [min, max) with mean (min + max) / 2."""
    rng.set_random_seed(1)
    values = fill(filler('type: "uniform" min: -2 max: 3'), (200, 500))
    assert values.dtype == np.float32
    assert values.min() >= -2 and values.max() < 3
    assert abs(values.mean() - 0.5) < 0.02


def test_gaussian_moments():
    """gaussian draws N(mean, std^2)."""
    rng.set_random_seed(2)
    values = fill(filler('type: "gaussian" mean: 1 std: 0.5'), (400, 500))
    assert abs(values.mean() - 1) < 0.01 and abs(values.std() - 0.5) < 0.01


def test_gaussian_sparse_keeps_sparse_over_shape0():
    """sparse keeps each weight with probability sparse / shape[0] (Caffe's num_outputs)."""
    rng.set_random_seed(3)
    values = fill(filler('type: "gaussian" sparse: 5'), (20, 10000))
    assert abs(np.count_nonzero(values) / values.size - 5 / 20) < 0.01


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", 50 * 9), ("FAN_OUT", 20 * 9),
                                         ("AVERAGE", (50 * 9 + 20 * 9) / 2)])
def test_xavier_scale(norm, n):
    """xavier is U(-sqrt(3/n), sqrt(3/n)) with n = count/shape[0], count/shape[1] or their mean."""
    rng.set_random_seed(4)
    values = fill(filler(f'type: "xavier" variance_norm: {norm}'), (20, 50, 3, 3))
    scale = math.sqrt(3 / n)
    assert np.abs(values).max() <= scale
    assert abs(values.var() - scale ** 2 / 3) < 0.05 * scale ** 2 / 3


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", 500), ("FAN_OUT", 2000)])
def test_msra_std(norm, n):
    """msra is N(0, 2/n) with Caffe's fan sizes."""
    rng.set_random_seed(5)
    values = fill(filler(f'type: "msra" variance_norm: {norm}'), (2000, 500))
    assert abs(values.std() - math.sqrt(2 / n)) < 0.01 * math.sqrt(2 / n)
    assert abs(values.mean()) < 0.01 * math.sqrt(2 / n)


def test_positive_unitball_rows_sum_to_one():
    """positive_unitball: each of the shape[0] rows is positive and sums to 1."""
    values = fill(filler('type: "positive_unitball"'), (7, 3, 4))
    assert (values >= 0).all()
    np.testing.assert_allclose(values.reshape(7, -1).sum(axis=1), 1, rtol=1e-5)


def test_bilinear_kernel_values():
    """bilinear: (1 - |x/f - c|)(1 - |y/f - c|), f = ceil(K/2), c = (K - 1) / (2f)."""
    values = fill(filler('type: "bilinear"'), (2, 1, 4, 4))
    ramp = np.array([0.25, 0.75, 0.75, 0.25])  # K=4: f=2, c=0.75
    np.testing.assert_allclose(values[1, 0], np.outer(ramp, ramp), rtol=1e-6)
    odd = fill(filler('type: "bilinear"'), (1, 1, 5, 5))[0, 0]
    ramp5 = np.array([1, 2, 3, 2, 1]) / 3  # K=5 (upsampling by 3): f=3, c=2/3
    np.testing.assert_allclose(odd, np.outer(ramp5, ramp5), rtol=1e-6)


def bilinear_reference(size):
    """Caffe's BilinearFiller loop over one (K, K) plane: x = i % K, y = (i / K) % K."""
    f = math.ceil(size / 2)
    c = (size - 1) / (2 * f)
    plane = np.empty(size * size)
    for i in range(size * size):
        x, y = i % size, (i // size) % size
        plane[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return plane.reshape(size, size)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6, 7])
def test_bilinear_uses_caffes_symmetric_centre(size):
    """bilinear: c = (K - 1) / (2f) (BVLC PR #5713), so K=3 gives rows [.25 .5 .25], ..."""
    values = fill(filler('type: "bilinear"'), (2, 3, size, size))
    for plane in values.reshape(-1, size, size):
        np.testing.assert_allclose(plane, bilinear_reference(size), rtol=1e-6)
    np.testing.assert_allclose(plane, plane[::-1, ::-1], rtol=1e-6)  # centred
    if size == 3:
        np.testing.assert_allclose(plane, np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
        np.testing.assert_allclose(plane[0], [0.25, 0.5, 0.25])


def test_seed_makes_draws_repeatable():
    """The global generator drives fillers: one seed, one set of weights."""
    param = filler('type: "xavier"')
    rng.set_random_seed(9)
    a = fill(param, (4, 5))
    rng.set_random_seed(9)
    np.testing.assert_array_equal(a, fill(param, (4, 5)))


@pytest.mark.parametrize(("text", "shape", "message"), [
    ('type: "nope"', (2,), "unknown filler type 'nope'; known types: bilinear, constant"),
    ('type: "xavier" sparse: 2', (2, 2), "does not support sparse"),
    ('type: "bilinear"', (1, 1, 3, 4), "square"),
    ('type: "bilinear"', (3, 3), "4-d"),
    ('type: "uniform" min: 2 max: 1', (2,), "min <= max"),
    ('type: "gaussian" std: 0', (2,), "std > 0"),
])
def test_errors(text, shape, message):
    """Unknown types and settings Caffe rejects raise a NetError saying why."""
    with pytest.raises(NetError, match=message):
        fill(filler(text), shape)
