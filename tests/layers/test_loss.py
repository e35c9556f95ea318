"""Loss layers: SoftmaxWithLoss (Caffe's multinomial logistic loss of the softmax),
SigmoidCrossEntropyLoss and EuclideanLoss, with their normalization modes, ignore_label,
loss weight and shape checks."""

import math

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer

FLT_MIN = float(np.finfo(np.float32).tiny)


def loss_layer(loss_param: str = "", axis: int = 1):
    return make_layer(f'type: "SoftmaxWithLoss" softmax_param {{ axis: {axis} }} '
                      f'loss_param {{ {loss_param} }}')


def reference(scores: np.ndarray, labels: np.ndarray, mode: str,
              ignore: int | None = None) -> float:
    """Loop over (n, h, w) positions of (N, C, H, W) scores with axis 1."""
    n, c = scores.shape[:2]
    inner = int(np.prod(scores.shape[2:]))
    s = scores.reshape(n, c, inner).astype(np.float64)
    lab = labels.reshape(n, inner)
    total, valid = 0.0, 0
    for i in range(n):
        for j in range(inner):
            y = int(lab[i, j])
            if ignore is not None and y == ignore:
                continue
            peak = max(s[i, :, j])
            z = sum(math.exp(v - peak) for v in s[i, :, j])
            p = math.exp(s[i, y, j] - peak) / z
            total -= math.log(max(p, FLT_MIN))
            valid += 1
    norm = {"FULL": n * inner, "VALID": valid, "BATCH_SIZE": n, "NONE": 1}[mode]
    return total / max(1, norm)


def spatial_case(seed: int = 0):
    """Scores (2, 4, 2, 3) and labels (2, 1, 2, 3) with two positions labelled 255."""
    g = np.random.default_rng(seed)
    scores = g.standard_normal((2, 4, 2, 3)).astype(np.float32)
    labels = g.integers(0, 4, (2, 1, 2, 3)).astype(np.float32)
    labels[0, 0, 1, 2] = labels[1, 0, 0, 0] = 255
    return scores, labels


def run(layer, scores, labels, num_top=1):
    bottom = blobs_from(scores, labels)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    return bottom, top


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_forward_each_normalization_with_ignore_label(mode):
    """loss = -Σ log p_label / norm over non-ignored positions; VALID counts them, FULL is
    N·H·W, BATCH_SIZE is N, NONE is 1."""
    scores, labels = spatial_case()
    layer = loss_layer(f"normalization: {mode} ignore_label: 255")
    _, top = run(layer, scores, labels)
    assert top[0].data.shape == ()
    assert float(top[0].data) == pytest.approx(reference(scores, labels, mode, 255), rel=1e-5)


def test_default_is_valid_without_ignore_label():
    """With no ignore_label every position is valid, so the default VALID divides by N·H·W."""
    scores, labels = spatial_case()
    labels[labels == 255] = 1
    _, top = run(loss_layer(), scores, labels)
    assert float(top[0].data) == pytest.approx(reference(scores, labels, "FULL"), rel=1e-5)


@pytest.mark.parametrize(("legacy", "mode"), [("false", "BATCH_SIZE"), ("true", "VALID")])
def test_legacy_normalize_flag(legacy, mode):
    """normalize: false means BATCH_SIZE and true means VALID, unless normalization is set."""
    scores, labels = spatial_case()
    _, top = run(loss_layer(f"normalize: {legacy} ignore_label: 255"), scores, labels)
    assert float(top[0].data) == pytest.approx(reference(scores, labels, mode, 255), rel=1e-5)
    _, top = run(loss_layer(f"normalize: {legacy} normalization: NONE ignore_label: 255"),
                 scores, labels)
    assert float(top[0].data) == pytest.approx(reference(scores, labels, "NONE", 255),
                                               rel=1e-5)


def test_probability_top_and_tiny_probabilities():
    """The optional second top is the softmax; a vanishing p_label is clamped to FLT_MIN so
    the loss stays finite."""
    scores = np.array([[0.0, 200.0], [3.0, 1.0]], np.float32)
    labels = np.array([0, 0], np.float32)
    two_tops = make_layer('type: "SoftmaxWithLoss" loss_weight: 1 loss_weight: 0')  # one per top
    _, top = run(two_tops, scores, labels, num_top=2)
    e = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(1, keepdims=True), rtol=1e-6)
    assert float(top[0].data) == pytest.approx(reference(scores, labels, "VALID"), rel=1e-5)
    assert np.isfinite(top[0].data)


@pytest.mark.parametrize("param", ["", "normalization: FULL ignore_label: 255",
                                   "normalization: BATCH_SIZE ignore_label: 255",
                                   "normalization: NONE"])
def test_gradient(param):
    """d scores = (p - onehot)/norm (0 at ignored positions) matches numerical gradients."""
    scores, labels = spatial_case(1)
    if "ignore" not in param:
        labels[labels == 255] = 2
    layer = loss_layer(param)
    bottom = blobs_from(scores[:, :, :1], labels[:, :, :1])
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_backward_scales_by_loss_weight_and_zeroes_ignored():
    """The gradient is multiplied by the loss weight held in top[0].diff; ignored positions
    get exactly 0."""
    scores, labels = spatial_case(2)
    layer = loss_layer("ignore_label: 255")
    bottom, top = run(layer, scores, labels)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    unit = bottom[0].diff.copy()
    top[0].diff[...] = 0.25
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 0.25 * unit, rtol=1e-6)
    assert np.all(bottom[0].diff[0, :, 1, 2] == 0)
    assert np.all(bottom[0].diff[1, :, 0, 0] == 0)
    # (p - onehot) sums to zero over the classes at every valid position
    np.testing.assert_allclose(unit.sum(axis=1), 0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # softmax of inf - inf
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_at_ignored_positions_add_nothing(bad):
    """Caffe skips ignored positions: their inf/NaN scores change neither loss nor gradient."""
    scores, labels = spatial_case(5)
    layer = loss_layer("ignore_label: 255")
    bottom, top = run(layer, scores, labels)
    clean_loss = float(top[0].data)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    clean_grad = bottom[0].diff.copy()
    scores[0, :, 1, 2] = bad  # labelled 255
    scores[1, 2, 0, 0] = bad  # labelled 255
    bottom, top = run(layer, scores, labels)
    assert float(top[0].data) == pytest.approx(clean_loss, rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert np.isfinite(bottom[0].diff).all()
    np.testing.assert_array_equal(bottom[0].diff, clean_grad)


def test_label_axis_other_than_one():
    """With axis 2 the classes run along axis 2: outer = N·C, inner = W."""
    g = np.random.default_rng(4)
    scores = g.standard_normal((2, 3, 4, 2)).astype(np.float32)
    labels = g.integers(0, 4, (2, 3, 2)).astype(np.float32)
    _, top = run(loss_layer(axis=2), scores, labels)
    moved = np.moveaxis(scores, 2, 1)  # (N, 4, C, W): reference works on axis 1
    want = reference(moved, labels, "VALID")
    assert float(top[0].data) == pytest.approx(want, rel=1e-5)


def test_label_count_mismatch_names_shapes():
    """The label count must be N·H·W; otherwise a ShapeError names both shapes."""
    layer = loss_layer()
    bottom = blobs_from(np.zeros((2, 3, 2, 2), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"label count 6.*\(2, 3\).*8.*\(2, 3, 2, 2\)"):
        setup_layer(layer, bottom)


def test_label_out_of_range_names_value():
    """A label outside [0, C) that is not ignored is a NetError naming the layer and value."""
    layer = loss_layer()
    with pytest.raises(NetError, match=r"softmaxwithloss.*label value 7"):
        run(layer, np.zeros((2, 3), np.float32), np.array([1, 7], np.float32))


def test_no_gradient_to_labels():
    """Asking for the label's gradient is an error."""
    layer = loss_layer()
    bottom, top = run(layer, np.zeros((2, 3), np.float32), np.array([1, 2], np.float32))
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)
    assert layer.is_loss and not layer.allow_force_backward(1)


# -- EuclideanLoss --------------------------------------------------------------------------

def euclidean_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Σ (a - b)² / (2N), one element at a time in float64."""
    total = sum((float(u) - float(v)) ** 2 for u, v in zip(a.reshape(-1), b.reshape(-1),
                                                          strict=True))
    return total / a.shape[0] / 2


def euclidean_case(seed: int = 0):
    g = np.random.default_rng(seed)
    return (g.standard_normal((3, 2, 2)).astype(np.float32),
            g.standard_normal((3, 4)).astype(np.float32))


def test_euclidean_forward():
    """loss = Σ (a - b)² / (2N) with N the first dimension; bottoms of the same count per
    sample may have different shapes ((3, 2, 2) and (3, 4))."""
    a, b = euclidean_case()
    layer = make_layer('type: "EuclideanLoss"')
    _, top = run(layer, a, b)
    assert top[0].data.shape == () and top[0].data.dtype == np.float32
    assert float(top[0].data) == pytest.approx(euclidean_reference(a, b), rel=1e-5)


def test_euclidean_gradient_both_bottoms():
    """Both bottoms get gradients, ±(a - b)/N, matching numerical gradients."""
    a, b = euclidean_case(1)
    layer = make_layer('type: "EuclideanLoss"')
    bottom = blobs_from(a, b)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_euclidean_backward_loss_weight_and_signs():
    """d a = w·(a - b)/N and d b = -w·(a - b)/N with w the loss weight in top[0].diff;
    propagate_down false leaves a bottom's diff alone."""
    a, b = euclidean_case(2)
    layer = make_layer('type: "EuclideanLoss"')
    bottom, top = run(layer, a, b)
    top[0].diff[...] = 0.5
    layer.backward(top, [True, True], bottom)
    d = (a - b.reshape(a.shape)) / a.shape[0]
    np.testing.assert_allclose(bottom[0].diff, 0.5 * d, rtol=1e-6)
    np.testing.assert_allclose(bottom[1].diff, -0.5 * d.reshape(b.shape), rtol=1e-6)
    bottom[1].diff[...] = 7
    layer.backward(top, [True, False], bottom)
    assert np.all(bottom[1].diff == 7)
    assert layer.is_loss and layer.allow_force_backward(0) and layer.allow_force_backward(1)


@pytest.mark.parametrize(("shape_a", "shape_b"), [((3, 4), (2, 6)), ((3, 4), (3, 5))])
def test_euclidean_shape_mismatch(shape_a, shape_b):
    """The batch sizes and the counts must agree; otherwise a ShapeError names both shapes."""
    layer = make_layer('type: "EuclideanLoss"')
    bottom = blobs_from(np.zeros(shape_a, np.float32), np.zeros(shape_b, np.float32))
    with pytest.raises(ShapeError, match=r"\(3, 4\).*\(" + str(shape_b[0])):
        setup_layer(layer, bottom)


# -- SigmoidCrossEntropyLoss ----------------------------------------------------------------

def sce_layer(loss_param: str = ""):
    return make_layer(f'type: "SigmoidCrossEntropyLoss" loss_param {{ {loss_param} }}')


def sce_reference(x: np.ndarray, t: np.ndarray, mode: str, ignore: int | None = None) -> float:
    """-Σ [t·log σ(x) + (1-t)·log(1-σ(x))] over non-ignored elements, in float64 from the
    textbook form, divided by the mode's normalizer (at least 1)."""
    total, valid = 0.0, 0
    for v, y in zip(x.reshape(-1).astype(np.float64), t.reshape(-1).astype(np.float64),
                    strict=True):
        if ignore is not None and int(y) == ignore:
            continue
        p = 1 / (1 + math.exp(-v))
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
        valid += 1
    n = x.shape[0]
    norm = {"FULL": x.size, "VALID": valid, "BATCH_SIZE": n, "NONE": 1}[mode]
    return total / max(1, norm)


def sce_case(seed: int = 0):
    """Scores (3, 2, 4) and targets in [0, 1] of shape (3, 8), three of them set to -1."""
    g = np.random.default_rng(seed)
    x = (2 * g.standard_normal((3, 2, 4))).astype(np.float32)
    t = g.uniform(0, 1, (3, 8)).astype(np.float32)
    t[0, 1] = t[1, 5] = t[2, 7] = -1
    return x, t


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_sce_forward_each_normalization_with_ignore_label(mode):
    """loss = Σ cross-entropy over non-ignored elements / norm: FULL is the count, VALID the
    non-ignored count, BATCH_SIZE is N, NONE is 1."""
    x, t = sce_case()
    _, top = run(sce_layer(f"normalization: {mode} ignore_label: -1"), x, t)
    assert top[0].data.shape == () and top[0].data.dtype == np.float32
    assert float(top[0].data) == pytest.approx(sce_reference(x, t, mode, -1), rel=1e-5)


def test_sce_default_is_batch_size():
    """Unlike SoftmaxWithLoss, Caffe's SigmoidCrossEntropyLoss divides by N by default."""
    x, t = sce_case(1)
    t[t < 0] = 0.25
    _, top = run(sce_layer(), x, t)
    assert float(top[0].data) == pytest.approx(sce_reference(x, t, "BATCH_SIZE"), rel=1e-5)


@pytest.mark.parametrize(("legacy", "mode"), [("false", "BATCH_SIZE"), ("true", "VALID")])
def test_sce_legacy_normalize_flag(legacy, mode):
    """normalize: false means BATCH_SIZE and true means VALID, unless normalization is set."""
    x, t = sce_case(2)
    _, top = run(sce_layer(f"normalize: {legacy} ignore_label: -1"), x, t)
    assert float(top[0].data) == pytest.approx(sce_reference(x, t, mode, -1), rel=1e-5)
    _, top = run(sce_layer(f"normalize: {legacy} normalization: FULL ignore_label: -1"), x, t)
    assert float(top[0].data) == pytest.approx(sce_reference(x, t, "FULL", -1), rel=1e-5)


def test_sce_ignore_label_compares_truncated_target():
    """Caffe compares static_cast<int>(target) with ignore_label, so with ignore_label 0 the
    targets 0 and 0.5 are both ignored while 1 is not."""
    x = np.array([[0.3, -1.2, 2.0]], np.float32)
    t = np.array([[0.0, 0.5, 1.0]], np.float32)
    _, top = run(sce_layer("ignore_label: 0 normalization: VALID"), x, t)
    assert float(top[0].data) == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)


def test_sce_large_scores_are_stable():
    """Scores of ±1e4 and ±FLT_MAX give finite losses: 0 when right, |x| when wrong."""
    big = float(np.finfo(np.float32).max)
    x = np.array([[1e4, -1e4, 1e4, -1e4, big, -big]], np.float32)
    t = np.array([[1, 0, 0, 1, 1, 0]], np.float32)
    layer = sce_layer("normalization: NONE")
    with np.errstate(over="raise", invalid="raise"):
        bottom, top = run(layer, x[:, :4], t[:, :4])
    assert float(top[0].data) == pytest.approx(2e4, rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[0, 0, 1, -1]], atol=1e-7)
    _, top = run(sce_layer(), x[:, 4:], t[:, 4:])
    assert float(top[0].data) == 0


@pytest.mark.parametrize("param", ["", "normalization: FULL ignore_label: -1",
                                   "normalization: VALID ignore_label: -1",
                                   "normalization: NONE"])
def test_sce_gradient(param):
    """d x = (σ(x) - t)/norm (0 where ignored) matches numerical gradients."""
    x, t = sce_case(3)
    if "ignore" not in param:
        t[t < 0] = 0.5
    layer = sce_layer(param)
    bottom = blobs_from(x, t)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_sce_backward_loss_weight_and_ignored_zero():
    """The gradient is (σ(x) - t)·loss_weight/norm; ignored elements get exactly 0 even if
    their scores are inf or NaN, and add nothing to the loss."""
    x, t = sce_case(4)
    layer = sce_layer("ignore_label: -1 normalization: VALID")
    bottom, top = run(layer, x, t)
    clean = float(top[0].data)
    top[0].diff[...] = 0.25
    layer.backward(top, [True, False], bottom)
    sig = 1 / (1 + np.exp(-x.reshape(3, 8).astype(np.float64)))
    want = np.where(t == -1, 0, sig - t) * 0.25 / 21
    np.testing.assert_allclose(bottom[0].diff.reshape(3, 8), want, rtol=1e-5, atol=1e-7)
    x.reshape(3, 8)[0, 1] = np.nan
    x.reshape(3, 8)[1, 5] = np.inf
    bottom, top = run(layer, x, t)
    assert float(top[0].data) == pytest.approx(clean, rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert np.isfinite(bottom[0].diff).all()
    assert bottom[0].diff.reshape(3, 8)[0, 1] == bottom[0].diff.reshape(3, 8)[1, 5] == 0


def test_sce_count_mismatch_and_targets_gradient():
    """Scores and targets must have the same count (ShapeError naming both shapes); asking
    for the targets' gradient is an error, and force_backward does not reach them."""
    layer = sce_layer()
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(2, 4\)"):
        setup_layer(layer, blobs_from(np.zeros((2, 3), np.float32),
                                      np.zeros((2, 4), np.float32)))
    layer = sce_layer()
    bottom, top = run(layer, np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32))
    with pytest.raises(NetError, match="targets"):
        layer.backward(top, [True, True], bottom)
    assert layer.is_loss and not layer.allow_force_backward(1)
