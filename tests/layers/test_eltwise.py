"""Eltwise: PROD, SUM with coefficients, MAX with Caffe's tie rule."""

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    # values away from 0 so top / bottom is well conditioned, distinct so MAX is smooth
    return [(rng.uniform(0.5, 1.5, (2, 3)) * rng.choice([-1, 1], (2, 3))).astype(np.float32)
            for _ in range(n)]


def _reference(op, arrays, coeff):
    out = np.zeros_like(arrays[0])
    for idx in np.ndindex(out.shape):
        vals = [float(a[idx]) for a in arrays]
        if op == "PROD":
            out[idx] = np.prod(vals)
        elif op == "SUM":
            out[idx] = sum(c * v for c, v in zip(coeff, vals, strict=True))
        else:
            out[idx] = max(vals)
    return out


@pytest.mark.parametrize(("op", "extra"), [
    ("PROD", ""), ("PROD", "stable_prod_grad: false"), ("SUM", ""),
    ("SUM", "coeff: 1 coeff: -0.5 coeff: 2"), ("MAX", ""),
])
def test_eltwise_forward_and_gradient(op, extra):
    """PROD multiplies, SUM weights by coeff (default 1), MAX takes the maximum; gradients
    agree with central differences (both PROD gradient formulas)."""
    arrays = _inputs(3)
    layer = make_layer(f'type: "Eltwise" eltwise_param {{ operation: {op} {extra} }}')
    bottom = blobs_from(*arrays)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    coeff = [1, -0.5, 2] if "coeff" in extra else [1, 1, 1]
    np.testing.assert_allclose(top[0].data, _reference(op, arrays, coeff), rtol=1e-6)
    check_gradient(layer, bottom, top, stepsize=1e-3)


def test_eltwise_default_is_sum():
    """operation defaults to SUM."""
    arrays = _inputs(2, seed=1)
    layer = make_layer('type: "Eltwise"')
    bottom = blobs_from(*arrays)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, arrays[0] + arrays[1], rtol=1e-6)


def test_eltwise_max_ties_follow_caffes_loop():
    """Caffe's MAX: bottom 1 wins a tie with bottom 0 (``a > b`` else b); later bottoms must be
    strictly greater, so the earlier winner keeps a tie. The diff goes to the winner only."""
    a = np.array([1, 2, 3, 3], np.float32)
    b = np.array([1, 1, 3, 2], np.float32)
    c = np.array([0, 2, 3, 3], np.float32)
    layer = make_layer('type: "Eltwise" eltwise_param { operation: MAX }')
    bottom = blobs_from(a, b, c)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [1, 2, 3, 3])
    top[0].diff[...] = [10, 20, 30, 40]
    layer.backward(top, [True, True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 20, 0, 40])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0, 30, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0, 0])


def test_eltwise_errors():
    """coeff count must equal the bottoms; coeff with PROD and unequal shapes are refused."""
    x = np.ones((2, 2), np.float32)
    with pytest.raises(NetError, match="one per bottom"):
        setup_layer(make_layer('type: "Eltwise" eltwise_param { coeff: 1 }'), blobs_from(x, x))
    with pytest.raises(NetError, match="only to operation SUM"):
        setup_layer(make_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 '
                               'coeff: 2 }'), blobs_from(x, x))
    with pytest.raises(ShapeError, match="equal shapes"):
        setup_layer(make_layer('type: "Eltwise"'), blobs_from(x, np.ones((2, 3), np.float32)))
