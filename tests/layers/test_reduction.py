"""Reduction: SUM, ASUM, SUMSQ, MEAN over the trailing axes, times coeff."""

import numpy as np
import pytest

from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def _reference(op, x, axis, coeff):
    outer_shape = x.shape[:axis]
    out = np.zeros(outer_shape, np.float64)
    for o in np.ndindex(outer_shape):
        vals = x[o].reshape(-1).astype(np.float64)
        total = 0.0
        for v in vals:
            total += {"SUM": v, "ASUM": abs(v), "SUMSQ": v * v, "MEAN": v / vals.size}[op]
        out[o] = coeff * total
    return out


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize(("axis", "coeff"), [(0, 1.0), (1, -2.5), (-1, 0.5)])
def test_reduction_forward_and_gradient(op, axis, coeff):
    """Reduces every axis from ``axis`` on (top shape bottom.shape[:axis]); MEAN divides by
    the reduced count; coeff scales; gradients agree (ASUM away from its kink at 0)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2)).astype(np.float32)
    layer = make_layer(f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} '
                       f'coeff: {coeff} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    a = axis % 3
    assert top[0].data.shape == x.shape[:a]
    np.testing.assert_allclose(top[0].data, _reference(op, x, a, coeff), rtol=1e-5, atol=1e-6)
    check_gradient(layer, bottom, top, kink_range=0.02 if op == "ASUM" else -1.0)


def test_reduction_defaults_sum_all_to_scalar():
    """Defaults: operation SUM, axis 0, coeff 1 -> a 0-d top holding the sum."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = make_layer('type: "Reduction"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == ()
    assert float(top[0].data) == 15.0
