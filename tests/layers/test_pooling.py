"""Pooling: Caffe's sizes, clipping and divisors against direct loops; numerical gradients."""

import math

import numpy as np
import pytest

from brewnet import rng
from brewnet.errors import NetError
from brewnet.layers.pooling import pooled_size
from brewnet.proto import caffe_pb2
from tests.gradcheck import blobs_from, check_gradient, forward_backward, make_layer, setup_layer


def pool_reference(x, kernel, stride, pad, method, ceil=True):
    """Caffe's pooling loops: returns (top, mask) with mask = h * W + w of each max."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad

    def size(extent, k, s, p):
        span = (extent + 2 * p - k) / s
        out = (math.ceil(span) if ceil else math.floor(span)) + 1
        # Caffe drops a last window starting in the padding on both axes if either is padded.
        if (ph or pw) and (out - 1) * s >= extent + p:
            out -= 1
        return out

    oh, ow = size(h, kh, sh, ph), size(w, kw, sw, pw)
    top = np.zeros((n, c, oh, ow))
    mask = np.full((n, c, oh, ow), -1)
    for i in range(n):
        for ch in range(c):
            for y in range(oh):
                for z in range(ow):
                    h0, w0 = y * sh - ph, z * sw - pw
                    h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
                    divisor = (h1 - h0) * (w1 - w0)
                    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
                    if method == "MAX":
                        best = -np.inf
                        for a in range(h0, h1):
                            for b in range(w0, w1):
                                if x[i, ch, a, b] > best:
                                    best, mask[i, ch, y, z] = x[i, ch, a, b], a * w + b
                        top[i, ch, y, z] = best
                    else:
                        top[i, ch, y, z] = x[i, ch, h0:h1, w0:w1].sum() / divisor
    return top, mask


def distinct(shape, seed=0):
    """Values with a unique maximum in every window, spaced for numerical gradients."""
    values = np.random.default_rng(seed).permutation(math.prod(shape)).astype(np.float32)
    return (values * 0.1).reshape(shape)


CASES = [
    ("kernel_size: 2 stride: 2", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0)),
    ("kernel_size: 3 stride: 2", (2, 2, 7, 8), (3, 3), (2, 2), (0, 0)),  # ceil overhang
    ("kernel_size: 3 stride: 2 pad: 1", (2, 2, 6, 7), (3, 3), (2, 2), (1, 1)),
    ("kernel_size: 3 stride: 3 pad: 1", (1, 2, 5, 5), (3, 3), (3, 3), (1, 1)),  # clip rule
    ("kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 1", (2, 2, 5, 6),
     (3, 2), (1, 2), (1, 1)),
    ("kernel_size: 2 stride: 3", (1, 2, 8, 8), (2, 2), (3, 3), (0, 0)),  # gaps
    ("kernel_size: 3 stride: 1", (1, 2, 4, 5), (3, 3), (1, 1), (0, 0)),  # overlap, no pad
    # Only H is padded, yet the clip rule also drops W's last window (which starts at 6).
    ("kernel_size: 2 stride: 3 pad_h: 1 pad_w: 0", (1, 1, 6, 6), (2, 2), (3, 3), (1, 0)),
]


def test_output_size_rule():
    """ceil((in + 2p - k) / s) + 1, minus one when the last window starts past in + p."""
    assert pooled_size(112, 3, 2, 0) == 56  # GoogLeNet: floor would give 55
    assert pooled_size(112, 3, 2, 0, ceil=False) == 55
    assert pooled_size(5, 3, 3, 1) == 2  # 3 before the clip rule
    assert pooled_size(6, 3, 2, 1) == 4
    layer = make_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }')
    top = setup_layer(layer, blobs_from(np.zeros((1, 1, 112, 112), np.float32)))
    assert top[0].shape == [1, 1, 56, 56]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_clip_rule_applies_to_both_axes_when_either_is_padded(method):
    """Caffe: if (pad_h || pad_w), both axes drop a last window that starts at in + pad."""
    assert pooled_size(6, 2, 3, 0) == 3
    assert pooled_size(6, 2, 3, 0, any_pad=True) == 2
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} kernel_size: 2 '
                       'stride: 3 pad_h: 1 pad_w: 0 }')
    bottom = blobs_from(distinct((1, 1, 6, 6)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].shape == [1, 1, 3, 2]
    assert np.isfinite(top[0].data).all()


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize(("fields", "shape", "kernel", "stride", "pad"), CASES)
def test_forward_matches_caffe_loops(method, fields, shape, kernel, stride, pad):
    """MAX clips windows to the image; AVE divides by the window clipped to [-p, in+p)."""
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} {fields} }}')
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom, num_top=2 if method == "MAX" else 1)
    layer.forward(bottom, top)
    want, mask = pool_reference(x, kernel, stride, pad, method)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-6)
    if method == "MAX":
        np.testing.assert_array_equal(top[1].data, mask)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_floor_round_mode(method):
    """round_mode: FLOOR drops the partial last window; the uncovered rows get no gradient."""
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} kernel_size: 3 '
                       'stride: 2 round_mode: FLOOR }')
    x = distinct((1, 2, 8, 8))
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    want, _ = pool_reference(x, (3, 3), (2, 2), (0, 0), method, ceil=False)
    assert top[0].shape == [1, 2, 3, 3]
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5)
    check_gradient(layer, bottom, top)


def test_max_ties_keep_the_first_in_window_order():
    """Caffe compares with '>': among equal values the first in row-major order wins."""
    layer = make_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }')
    bottom = blobs_from(np.ones((1, 1, 2, 2), np.float32))
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    assert float(top[1].data[0, 0, 0, 0]) == 0


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    """global_pooling takes the whole plane as the kernel: one output per channel."""
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} global_pooling: true }}')
    x = distinct((2, 3, 4, 5))
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    want = x.max(axis=(2, 3)) if method == "MAX" else x.mean(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], want, rtol=1e-5)
    check_gradient(layer, bottom, top)


def test_global_max_backward_needs_no_put_along_axis(monkeypatch):
    """The global MAX backward uses plain fancy indexing (CuPy 13 has no put_along_axis)."""
    monkeypatch.delattr(np, "put_along_axis", raising=False)
    layer = make_layer('type: "Pooling" pooling_param { pool: MAX global_pooling: true }')
    x = distinct((2, 3, 4, 5))
    bottom = blobs_from(x)
    forward_backward(layer, bottom, np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1) + 1)
    flat = x.reshape(6, -1)
    want = np.zeros_like(flat)
    want[np.arange(6), flat.argmax(axis=1)] = np.arange(6) + 1
    np.testing.assert_array_equal(bottom[0].diff.reshape(6, -1), want)
    assert not hasattr(layer, "_better")  # no per-window scratch for the global path


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize(("fields", "shape", "kernel", "stride", "pad"), CASES)
def test_gradients_match_numerical(method, fields, shape, kernel, stride, pad):
    """MAX routes each top diff to its argmax; AVE spreads diff / divisor over real pixels."""
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} {fields} }}')
    bottom = blobs_from(distinct(shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


@pytest.mark.parametrize(("fields", "message"), [
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", "STOCHASTIC pooling takes no pad"),
    ("global_pooling: true pad: 1", "global_pooling needs pad 0 and stride 1"),
    ("global_pooling: true kernel_size: 2", "remove kernel_size"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "not both"),
    ("kernel_h: 2", "must be given together"),
    ("stride: 2", "kernel_size .* is required"),
    ("kernel_size: 2 pad: 2", "must be smaller than the kernel"),
])
def test_bad_parameters_name_the_layer(fields, message):
    """Invalid pooling parameters raise a NetError naming the layer."""
    layer = make_layer(f'name: "p" type: "Pooling" pooling_param {{ {fields} }}')
    with pytest.raises(NetError, match=f"layer 'p'.*{message}"):
        setup_layer(layer, blobs_from(np.zeros((1, 1, 4, 4), np.float32)))


def test_ave_refuses_a_mask_top_and_non_4d_bottoms():
    """Only MAX has a mask top; the bottom must be (N, C, H, W)."""
    ave = make_layer('name: "p" type: "Pooling" pooling_param { pool: AVE kernel_size: 2 }')
    with pytest.raises(NetError, match="second"):
        setup_layer(ave, blobs_from(np.zeros((1, 1, 4, 4), np.float32)), num_top=2)
    mx = make_layer('name: "p" type: "Pooling" pooling_param { kernel_size: 2 }')
    with pytest.raises(NetError, match="4 axes"):
        setup_layer(mx, blobs_from(np.zeros((1, 4, 4), np.float32)))


# -- STOCHASTIC --------------------------------------------------------------------------------

def stochastic_windows(x, kernel, stride):
    """Caffe's stochastic-pooling windows: start at o * stride (no pad), clipped to the image;
    yields (n, c, oh, ow, list of (flat index, value))."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh = math.ceil((h - kh) / sh) + 1
    ow = math.ceil((w - kw) / sw) + 1
    for i in range(n):
        for ch in range(c):
            for y in range(oh):
                for z in range(ow):
                    cells = [(a * w + b, x[i, ch, a, b])
                             for a in range(y * sh, min(y * sh + kh, h))
                             for b in range(z * sw, min(z * sw + kw, w))]
                    yield i, ch, y, z, cells


STOCHASTIC_CASES = [
    ("kernel_size: 2 stride: 2", (2, 3, 4, 6), (2, 2), (2, 2)),
    ("kernel_size: 3 stride: 2", (2, 2, 7, 6), (3, 3), (2, 2)),  # ceil overhang, clipped
    ("kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2", (1, 2, 4, 7), (2, 3), (1, 2)),
]


@pytest.mark.parametrize(("fields", "shape", "kernel", "stride"), STOCHASTIC_CASES)
def test_stochastic_test_phase_is_weighted_average(fields, shape, kernel, stride):
    """Caffe's StoPoolForwardTest: sum(x^2) / (FLT_MIN + sum(x)), 0 for an all-zero window."""
    x = np.abs(np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    x[0, 0, :kernel[0], :kernel[1]] = 0  # one all-zero window
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: STOCHASTIC {fields} }}',
                       phase=caffe_pb2.TEST)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = np.zeros(top[0].data.shape)
    for i, ch, y, z, cells in stochastic_windows(x, kernel, stride):
        values = np.array([v for _, v in cells], np.float64)
        expected[i, ch, y, z] = (values ** 2).sum() / values.sum() if values.sum() else 0
    assert expected[0, 0, 0, 0] == 0 and top[0].data[0, 0, 0, 0] == 0
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5)
    top[0].diff[...] = 1
    with pytest.raises(NetError, match="only in the TRAIN phase"):
        layer.backward(top, [True], bottom)


@pytest.mark.parametrize(("fields", "shape", "kernel", "stride"), STOCHASTIC_CASES)
def test_stochastic_train_draws_from_the_window_and_routes_back(fields, shape, kernel, stride):
    """Caffe's StoPoolForwardTrain outputs one element of each window; StoPoolBackward adds
    each top diff to the drawn element (summing where overlapping windows drew the same)."""
    x = distinct(shape) + np.float32(0.1)  # positive and distinct: the value names the cell
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: STOCHASTIC {fields} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].data.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    expected = np.zeros(x.shape, np.float64)
    h, w = shape[2:]
    for i, ch, y, z, cells in stochastic_windows(x, kernel, stride):
        drawn = [index for index, v in cells if v == top[0].data[i, ch, y, z]]
        assert len(drawn) == 1, "the output is not an element of its window"
        expected[i, ch, drawn[0] // w, drawn[0] % w] += dy[i, ch, y, z]
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)


def test_stochastic_train_frequencies_follow_the_values():
    """Caffe draws each element with probability value / window sum (a zero is never drawn)."""
    rng.set_random_seed(5)
    window = np.array([[1, 2], [0, 5]], np.float32)
    draws = 40000
    x = np.broadcast_to(window, (draws, 1, 2, 2)).copy()
    layer = make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 }')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    values, counts = np.unique(top[0].data, return_counts=True)
    assert set(values.tolist()) <= {1.0, 2.0, 5.0}
    freq = dict(zip(values.tolist(), (counts / draws).tolist(), strict=True))
    for value in (1.0, 2.0, 5.0):
        p = value / 8
        sigma = math.sqrt(p * (1 - p) / draws)
        assert abs(freq.get(value, 0.0) - p) < 5 * sigma, (value, freq)


def test_stochastic_train_is_reproducible_from_the_seed():
    """The draws come from brewnet.rng, so one seed fixes them."""
    x = distinct((2, 3, 6, 6)) + np.float32(0.1)
    outputs = []
    for _ in range(2):
        rng.set_random_seed(11)
        layer = make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 '
                           'stride: 1 }')
        bottom = blobs_from(x)
        top = setup_layer(layer, bottom)
        layer.forward(bottom, top)
        outputs.append(top[0].data.copy())
    np.testing.assert_array_equal(*outputs)


def test_stochastic_global_pooling():
    """global_pooling with STOCHASTIC: one window per plane, the whole image."""
    x = np.abs(np.random.default_rng(3).standard_normal((2, 3, 4, 5))).astype(np.float32)
    layer = make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC global_pooling: true }',
                       phase=caffe_pb2.TEST)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    flat = x.reshape(2, 3, -1).astype(np.float64)
    np.testing.assert_allclose(top[0].data[..., 0, 0], (flat ** 2).sum(-1) / flat.sum(-1),
                               rtol=1e-5)
