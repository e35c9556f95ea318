"""MultinomialLogisticLoss and InfogainLoss: Caffe's forward formulas (checked against loops),
their thresholds and normalizations, gradients by central differences, and the errors."""

import math

import numpy as np
import pytest

from brewnet.errors import NetError, ShapeError
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import write_binary
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer

FLT_MIN = float(np.finfo(np.float32).tiny)


def run(layer, *arrays, num_top=1):
    bottom = blobs_from(*arrays)
    top = setup_layer(layer, bottom, num_top)
    layer.forward(bottom, top)
    return bottom, top


# -- MultinomialLogisticLoss -------------------------------------------------------------------

def mll_case(seed=0, shape=(4, 5)):
    r = np.random.default_rng(seed)
    p = r.uniform(0.2, 1.0, shape).astype(np.float32)
    d = int(np.prod(shape[1:]))
    labels = r.integers(0, d, shape[0]).astype(np.float32)
    return p, labels


def mll_reference(p, labels):
    """Loop: -Σ log max(p[n, label], 1e-20) / N over p viewed as (N, count/N)."""
    n = p.shape[0]
    flat = p.reshape(n, -1).astype(np.float64)
    return -sum(math.log(max(flat[i, int(labels[i])], 1e-20)) for i in range(n)) / n


@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 2, 2)])
def test_mll_forward(shape):
    """Caffe: loss = -Σ log max(p_label, kLOG_THRESHOLD) / N with D = count/N classes."""
    p, labels = mll_case(shape=shape)
    _, top = run(make_layer('type: "MultinomialLogisticLoss"'), p, labels)
    assert float(top[0].data) == pytest.approx(mll_reference(p, labels), rel=1e-5)


def test_mll_threshold_and_labels_4d():
    """A zero probability is clipped to 1e-20 (loss log(1e20)/N), not infinite; labels may
    be (N, 1, 1, 1)."""
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    labels = np.array([0, 1], np.float32).reshape(2, 1, 1, 1)
    layer = make_layer('type: "MultinomialLogisticLoss"')
    bottom, top = run(layer, p, labels)
    expected = (-math.log(1e-20) - math.log(0.5)) / 2
    assert float(top[0].data) == pytest.approx(expected, rel=1e-5)
    top[0].diff[...] = 2.0
    layer.backward(top, [True, False], bottom)
    want = np.zeros_like(p)
    want[0, 0] = -2.0 / (2 * np.float32(1e-20))
    want[1, 1] = -2.0 / (2 * 0.5)
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-5)


def test_mll_gradient():
    """Backward: -loss_weight / (N · p) at the label, 0 elsewhere."""
    p, labels = mll_case(1)
    layer = make_layer('type: "MultinomialLogisticLoss"')
    bottom = blobs_from(p, labels)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0], stepsize=1e-3)


def test_mll_errors():
    """Label shape (N, 2) is not one label per sample; a label past D is named; no gradient
    reaches the labels."""
    p, labels = mll_case()
    with pytest.raises(ShapeError, match="one value per sample"):
        run(make_layer('type: "MultinomialLogisticLoss"'), p, np.zeros((4, 2), np.float32))
    with pytest.raises(NetError, match="label value 5"):
        run(make_layer('type: "MultinomialLogisticLoss"'), p, np.full(4, 5, np.float32))
    layer = make_layer('type: "MultinomialLogisticLoss"')
    bottom, top = run(layer, p, labels)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)


# -- InfogainLoss ----------------------------------------------------------------------------

def infogain_reference(scores, labels, h, mode="VALID", ignore=None, axis=1):
    """Loops over (outer, inner) positions: softmax over the class axis, then
    -Σ_c H[label, c]·log max(p_c, FLT_MIN), divided by the normalizer."""
    shape = scores.shape
    outer = int(np.prod(shape[:axis]))
    c = shape[axis]
    inner = int(np.prod(shape[axis + 1:]))
    s = scores.reshape(outer, c, inner).astype(np.float64)
    lab = labels.reshape(outer, inner)
    total, valid = 0.0, 0
    for i in range(outer):
        for j in range(inner):
            y = int(lab[i, j])
            if ignore is not None and y == ignore:
                continue
            e = [math.exp(v - max(s[i, :, j])) for v in s[i, :, j]]
            for k in range(c):
                total -= h[y, k] * math.log(max(e[k] / sum(e), FLT_MIN))
            valid += 1
    norm = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, norm)


def infogain_case(seed=0, shape=(3, 4, 2)):
    r = np.random.default_rng(seed)
    scores = r.standard_normal(shape).astype(np.float32)
    c = shape[1]
    labels = r.integers(0, c, (shape[0],) + shape[2:]).astype(np.float32)
    h = r.uniform(0, 1, (c, c)).astype(np.float32)
    return scores, labels, h


def write_h(path, h, legacy=False):
    bp = caffe_pb2.BlobProto()
    if legacy:
        bp.num, bp.channels, bp.height, bp.width = 1, 1, *h.shape
    else:
        bp.shape.dim.extend(h.shape)
    bp.data.extend(h.reshape(-1).tolist())
    write_binary(path, bp)
    return str(path)


@pytest.mark.parametrize("mode", ["VALID", "FULL", "BATCH_SIZE", "NONE"])
def test_infogain_third_bottom_each_normalization(mode):
    """Caffe's InfogainLoss: softmax first, H-weighted log-likelihood, loss_param
    normalization counting ignore_label positions out."""
    scores, labels, h = infogain_case()
    labels[0, 1] = 2
    layer = make_layer(f'type: "InfogainLoss" loss_param {{ normalization: {mode} '
                       'ignore_label: 2 }')
    _, top = run(layer, scores, labels, h)
    expected = infogain_reference(scores, labels, h, mode, ignore=2)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("legacy", [False, True])
def test_infogain_source_file_and_prob_top(tmp_path, legacy):
    """H from infogain_loss_param.source (BlobProto with shape or legacy 4-D fields);
    top 1 is the softmax; identity H reduces to the softmax log-loss."""
    scores, labels, _ = infogain_case(1)
    h = np.eye(4, dtype=np.float32)
    src = write_h(tmp_path / "h.binaryproto", h, legacy)
    layer = make_layer(f'type: "InfogainLoss" infogain_loss_param {{ source: "{src}" }} '
                       "loss_weight: 1 loss_weight: 0")  # two tops: a weight for each
    _, top = run(layer, scores, labels, num_top=2)
    assert float(top[0].data) == pytest.approx(infogain_reference(scores, labels, h),
                                               rel=1e-5)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_infogain_source_reads_double_data_first(tmp_path):
    """An H file holding both float and double values is read as Caffe's FromProto reads it:
    the double values."""
    scores, labels, _ = infogain_case(1)
    h = np.eye(4, dtype=np.float32)
    bp = caffe_pb2.BlobProto(shape={"dim": [4, 4]}, data=np.ones(16).tolist(),
                             double_data=h.reshape(-1).tolist())
    write_binary(tmp_path / "h.binaryproto", bp)
    layer = make_layer(f'type: "InfogainLoss" infogain_loss_param {{ '
                       f'source: "{tmp_path / "h.binaryproto"}" }}')
    _, top = run(layer, scores, labels)
    assert float(top[0].data) == pytest.approx(infogain_reference(scores, labels, h), rel=1e-5)


def test_infogain_axis_two():
    """infogain_loss_param.axis 2: classes run along axis 2 (outer = N·C, inner = W)."""
    r = np.random.default_rng(2)
    scores = r.standard_normal((2, 3, 4, 2)).astype(np.float32)
    labels = r.integers(0, 4, (2, 3, 2)).astype(np.float32)
    h = r.uniform(0, 1, (4, 4)).astype(np.float32)
    _, top = run(make_layer('type: "InfogainLoss" infogain_loss_param { axis: 2 }'),
                 scores, labels, h)
    expected = infogain_reference(scores, labels, h, axis=2)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-5)


def test_infogain_gradient():
    """Backward: (p·Σ_c H[label, c] - H[label, :]) · loss_weight / normalizer."""
    scores, labels, h = infogain_case(3)
    layer = make_layer('type: "InfogainLoss"')
    bottom = blobs_from(scores, labels, h)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_infogain_backward_ignored_zero_and_weight():
    """Ignored positions get exactly 0; the gradient scales with the loss weight."""
    scores, labels, h = infogain_case(4)
    labels[1, 0] = -1
    layer = make_layer('type: "InfogainLoss" loss_param { ignore_label: -1 }')
    bottom, top = run(layer, scores, labels, h)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False, False], bottom)
    once = bottom[0].diff.copy()
    assert np.all(once[1, :, 0] == 0)
    top[0].diff[...] = 3.0
    layer.backward(top, [True, False, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 3 * once, rtol=1e-6)
    with pytest.raises(NetError, match="infogain matrix"):
        layer.backward(top, [True, False, True], bottom)
    assert not layer.allow_force_backward(2)


def test_infogain_errors(tmp_path):
    """Missing source names the file; a wrong-sized H names both sizes; malformed file."""
    scores, labels, h = infogain_case()
    missing = tmp_path / "nope.binaryproto"
    with pytest.raises(NetError, match="nope.binaryproto"):
        run(make_layer(f'type: "InfogainLoss" infogain_loss_param {{ source: "{missing}" }}'),
            scores, labels)
    with pytest.raises(NetError, match="source"):
        run(make_layer('type: "InfogainLoss"'), scores, labels)
    bad = tmp_path / "bad.binaryproto"
    bp = caffe_pb2.BlobProto()
    bp.shape.dim.extend([3, 3])
    bp.data.extend([1.0] * 4)
    write_binary(bad, bp)
    with pytest.raises(NetError, match="bad.binaryproto.*malformed"):
        run(make_layer(f'type: "InfogainLoss" infogain_loss_param {{ source: "{bad}" }}'),
            scores, labels)
    with pytest.raises(ShapeError, match="4x4"):
        run(make_layer('type: "InfogainLoss"'), scores, labels, np.eye(3, dtype=np.float32))
