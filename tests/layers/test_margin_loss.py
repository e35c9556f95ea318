"""HingeLoss and ContrastiveLoss: Caffe's formulas (checked against loops), their norms and
legacy variant, gradients by central differences, and shape errors."""

import math

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def run(layer, *arrays):
    bottom = blobs_from(*arrays)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    return bottom, top


# -- HingeLoss ------------------------------------------------------------------------------

def hinge_case(seed=0, shape=(4, 5)):
    r = np.random.default_rng(seed)
    x = r.uniform(-2, 2, shape).astype(np.float32)
    x[np.abs(np.abs(x) - 1) < 0.1] = 0.5  # keep away from the hinge's kinks at ±1
    d = int(np.prod(shape[1:]))
    return x, r.integers(0, d, shape[0]).astype(np.float32)


def hinge_reference(x, labels, power):
    """Loop: Σ_n Σ_c max(0, 1 - t·x)^p / N, t = +1 at the label, -1 elsewhere."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float64)
    total = 0.0
    for i in range(n):
        for c in range(flat.shape[1]):
            t = 1.0 if c == int(labels[i]) else -1.0
            total += max(0.0, 1 - t * flat[i, c]) ** power
    return total / n


@pytest.mark.parametrize(("norm", "power"), [("", 1), ("norm: L1", 1), ("norm: L2", 2)])
@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 2, 1)])
def test_hinge_forward(norm, power, shape):
    """Caffe's HingeLoss: L1 (default) sums the margins, L2 their squares, over N."""
    x, labels = hinge_case(shape=shape)
    _, top = run(make_layer(f'type: "HingeLoss" hinge_loss_param {{ {norm} }}'), x, labels)
    assert float(top[0].data) == pytest.approx(hinge_reference(x, labels, power), rel=1e-5)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_gradient(norm):
    """Backward: -t·(sign | 2·margin)·loss_weight/N where the margin is positive."""
    x, labels = hinge_case(1)
    layer = make_layer(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}')
    bottom = blobs_from(x, labels)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0], stepsize=1e-3)


def test_hinge_errors():
    """Labels must be one per sample and in range; no gradient to the labels."""
    x, labels = hinge_case()
    with pytest.raises(ShapeError, match="one class index per sample"):
        run(make_layer('type: "HingeLoss"'), x, np.zeros((4, 2), np.float32))
    with pytest.raises(NetError, match="label value 7"):
        run(make_layer('type: "HingeLoss"'), x, np.full(4, 7, np.float32))
    layer = make_layer('type: "HingeLoss"')
    bottom, top = run(layer, x, labels)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)


# -- ContrastiveLoss ------------------------------------------------------------------------

def pair_case(seed=0, n=6, c=3, margin=1.0, legacy=False):
    r = np.random.default_rng(seed)
    while True:
        a = r.normal(0, 0.4, (n, c, 1, 1)).astype(np.float32)
        b = r.normal(0, 0.4, (n, c, 1, 1)).astype(np.float32)
        d2 = ((a - b) ** 2).sum(axis=(1, 2, 3))
        gap = margin - d2 if legacy else margin - np.sqrt(d2)
        if np.all(np.abs(gap) > 0.1):  # away from the kink, for the gradient check
            break
    y = np.array([1, 0, 0, 1, 0, 0][:n], np.float32)
    return a, b, y


def contrastive_reference(a, b, y, margin, legacy):
    """Loop: Σ [y·d² + (1-y)·max(m - d, 0)²] / 2N (legacy: max(m - d², 0))."""
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        d2 = float(((a[i].astype(np.float64) - b[i]) ** 2).sum())
        if int(y[i]):
            total += d2
        elif legacy:
            total += max(margin - d2, 0.0)
        else:
            total += max(margin - math.sqrt(d2), 0.0) ** 2
    return total / n / 2


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("margin", [1.0, 0.6])
def test_contrastive_forward(legacy, margin):
    """Caffe's ContrastiveLoss with margin and legacy_version."""
    a, b, y = pair_case(margin=margin, legacy=legacy)
    flag = "true" if legacy else "false"
    layer = make_layer(f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: {margin} '
                       f'legacy_version: {flag} }}')
    _, top = run(layer, a, b, y)
    expected = contrastive_reference(a, b, y, margin, legacy)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-5)


def test_contrastive_similarity_truncates():
    """Similarity is static_cast<int>(y): 0.7 counts as dissimilar, 1.5 as similar."""
    a, b, _ = pair_case(n=2)
    y = np.array([0.7, 1.5], np.float32)
    _, top = run(make_layer('type: "ContrastiveLoss"'), a, b, y)
    expected = contrastive_reference(a, b, np.array([0, 1], np.float32), 1.0, False)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_gradient(legacy):
    """Backward to a and b (opposite signs); the non-legacy term divides by d + 1e-4."""
    a, b, y = pair_case(2, legacy=legacy)
    flag = "true" if legacy else "false"
    layer = make_layer(f'type: "ContrastiveLoss" contrastive_loss_param {{ '
                       f'legacy_version: {flag} }}')
    bottom = blobs_from(a, b, y)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0, 1], stepsize=1e-3, threshold=2e-2)


def test_contrastive_2d_bottoms_and_no_label_gradient():
    """(N, C) embeddings work like (N, C, 1, 1); the similarity never gets a gradient."""
    a, b, y = pair_case(3)
    layer = make_layer('type: "ContrastiveLoss"')
    bottom, top = run(layer, a.reshape(6, 3), b.reshape(6, 3), y)
    assert float(top[0].data) == pytest.approx(contrastive_reference(a, b, y, 1.0, False),
                                               rel=1e-5)
    bottom[2].diff[...] = 5
    top[0].diff[...] = 1
    layer.backward(top, [True, True, True], bottom)
    assert np.all(bottom[2].diff == 0)
    np.testing.assert_allclose(bottom[0].diff, -bottom[1].diff)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(1)


def test_contrastive_shape_errors():
    """Spatial bottoms, mismatched channels and a wrong similarity count are named."""
    a, b, y = pair_case()
    with pytest.raises(ShapeError, match=r"\(N, C, 1, 1\)"):
        run(make_layer('type: "ContrastiveLoss"'), np.zeros((6, 3, 2, 1), np.float32), b, y)
    with pytest.raises(ShapeError, match="same batch size and channels"):
        run(make_layer('type: "ContrastiveLoss"'), a, np.zeros((6, 4, 1, 1), np.float32), y)
    with pytest.raises(ShapeError, match="one value per pair"):
        run(make_layer('type: "ContrastiveLoss"'), a, b, np.zeros((6, 2), np.float32))
