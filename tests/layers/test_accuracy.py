"""Accuracy: top-k classification accuracy with Caffe's tie rule, ignore_label and the
per-class top."""

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, make_layer, setup_layer


def accuracy_layer(param: str = ""):
    return make_layer(f'type: "Accuracy" accuracy_param {{ {param} }}')


def reference(scores: np.ndarray, labels: np.ndarray, top_k: int, ignore=None):
    """Loop over (n, spatial) positions of (N, C, ...) scores: correct when fewer than top_k
    other classes score >= the label's class."""
    n, c = scores.shape[:2]
    s = scores.reshape(n, c, -1)
    lab = labels.reshape(n, -1)
    hits, count = 0, 0
    per_hits, per_count = np.zeros(c), np.zeros(c)
    for i in range(n):
        for j in range(s.shape[2]):
            y = int(lab[i, j])
            if ignore is not None and y == ignore:
                continue
            rivals = sum(1 for k in range(c) if k != y and s[i, k, j] >= s[i, y, j])
            ok = rivals < top_k
            hits += ok
            count += 1
            per_hits[y] += ok
            per_count[y] += 1
    per = np.where(per_count > 0, per_hits / np.maximum(per_count, 1), 0)
    return (hits / count if count else 0.0), per


def run(layer, scores, labels, num_top=1):
    bottom = blobs_from(scores, labels)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    return top


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_matches_reference(top_k):
    """Fraction of samples whose label is within the top_k scores, with per-class output."""
    g = np.random.default_rng(0)
    scores = g.standard_normal((20, 5)).astype(np.float32)
    labels = g.integers(0, 5, 20).astype(np.float32)
    top = run(accuracy_layer(f"top_k: {top_k}"), scores, labels, num_top=2)
    want, per = reference(scores, labels, top_k)
    assert top[0].data.shape == () and top[1].data.shape == (5,)
    assert float(top[0].data) == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(top[1].data, per, rtol=1e-6)


def test_ties_count_against_the_label():
    """Caffe counts classes scoring >= the label's score: an exact tie at the top is a miss
    for top_k 1 and a hit for top_k 2."""
    scores = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.1, 0.2, 0.2]], np.float32)
    labels = np.array([0, 1, 2], np.float32)
    top = run(accuracy_layer("top_k: 1"), scores, labels)
    assert float(top[0].data) == 0.0
    top = run(accuracy_layer("top_k: 2"), scores, labels)
    assert float(top[0].data) == 1.0


def test_ignore_label_and_spatial_axis():
    """Ignored positions count neither as hits nor in the denominator; labels are per (N, H, W)
    position when the scores are (N, C, H, W)."""
    g = np.random.default_rng(1)
    scores = g.standard_normal((2, 3, 2, 2)).astype(np.float32)
    labels = g.integers(0, 3, (2, 1, 2, 2)).astype(np.float32)
    labels[0, 0, 0, 0] = labels[1, 0, 1, 1] = -1
    top = run(accuracy_layer("ignore_label: -1"), scores, labels, num_top=2)
    want, per = reference(scores, labels, 1, ignore=-1)
    assert float(top[0].data) == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(top[1].data, per, rtol=1e-6)


def test_all_ignored_gives_zero_and_absent_class_gives_zero():
    """With no valid label the accuracy is 0 (not NaN); a class never seen scores 0."""
    scores = np.zeros((2, 3), np.float32)
    labels = np.array([4, 4], np.float32)
    top = run(accuracy_layer("ignore_label: 4"), scores, labels, num_top=2)
    assert float(top[0].data) == 0.0
    assert np.all(top[1].data == 0)


def test_axis_parameter():
    """accuracy_param.axis picks the class axis: scores (N, T, C) with axis 2, labels (N, T)."""
    g = np.random.default_rng(2)
    scores = g.standard_normal((3, 4, 5)).astype(np.float32)
    labels = g.integers(0, 5, (3, 4)).astype(np.float32)
    top = run(accuracy_layer("axis: -1 top_k: 2"), scores, labels)
    want, _ = reference(scores.reshape(12, 5), labels.reshape(12), 2)
    assert float(top[0].data) == pytest.approx(want, rel=1e-6)


def test_errors():
    """top_k above the class count and a label count mismatch are ShapeErrors; an out-of-range
    label is a NetError naming it; asking for a gradient is refused."""
    with pytest.raises(ShapeError, match="top_k 4"):
        run(accuracy_layer("top_k: 4"), np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ShapeError, match="label count 3"):
        run(accuracy_layer(), np.zeros((2, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(NetError, match="label value 3"):
        run(accuracy_layer(), np.zeros((2, 3), np.float32), np.array([0, 3], np.float32))
    layer = accuracy_layer()
    bottom = blobs_from(np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    top = setup_layer(layer, bottom)
    with pytest.raises(NetError, match="no backward"):
        layer.backward(top, [True, False], bottom)
