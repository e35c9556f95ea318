"""Convolution: forward against a direct loop, backward against numerical gradients."""

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import NetError, ShapeError
from brewnet.layers import conv
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def conv_reference(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe's convolution written as plain loops over outputs (cross-correlation)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((n, m, oh, ow))
    per_group = m // group
    for i in range(n):
        for o in range(m):
            g = o // per_group
            for y in range(oh):
                for z in range(ow):
                    patch = xp[i, g * cg:(g + 1) * cg, y * sh:y * sh + dh * (kh - 1) + 1:dh,
                               z * sw:z * sw + dw * (kw - 1) + 1:dw]
                    out[i, o, y, z] = np.sum(patch * w[o]) + (b[o] if b is not None else 0)
    return out


def _layer(fields: str, shape, seed=0):
    layer = make_layer(f'name: "c" type: "Convolution" convolution_param {{ {fields} '
                       'weight_filler { type: "gaussian" std: 0.5 } '
                       'bias_filler { type: "uniform" min: -1 max: 1 } }')
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    return layer, bottom, top, x


CASES = [
    ("num_output: 3 kernel_size: 3", (2, 2, 5, 6), {}),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (2, 3, 7, 7),
     dict(stride=(2, 2), pad=(1, 1))),
    ("num_output: 2 kernel_size: 2 dilation: 2 pad: 1", (2, 2, 6, 5),
     dict(pad=(1, 1), dilation=(2, 2))),
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1", (2, 4, 5, 5), dict(pad=(1, 1), group=2)),
    ("num_output: 3 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1",
     (2, 2, 7, 6), dict(stride=(2, 1), pad=(1, 0))),
    ("num_output: 2 kernel_size: 3 kernel_size: 1 stride: 1 stride: 2", (2, 2, 5, 6),
     dict(stride=(1, 2))),
    # Wide rows (batch-first layout) and a single sample.
    ("num_output: 3 kernel_size: 3 pad: 2", (2, 2, 4, 20), dict(pad=(2, 2))),
    ("num_output: 3 kernel_size: 3", (1, 2, 5, 5), {}),
    # Many channels (patch-row layout), with groups, padding, stride and dilation.
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1 stride: 2", (2, 24, 5, 5),
     dict(stride=(2, 2), pad=(1, 1), group=2)),
    ("num_output: 3 kernel_size: 2 dilation: 2 pad: 1", (2, 16, 6, 5),
     dict(pad=(1, 1), dilation=(2, 2))),
    # Depthwise (group == channels == num_output): shifted multiply-adds, no im2col.
    ("num_output: 3 kernel_size: 3 pad: 1 group: 3", (2, 3, 6, 5), dict(pad=(1, 1), group=3)),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 4", (2, 4, 7, 6),
     dict(stride=(2, 2), pad=(1, 1), group=4)),
    ("num_output: 2 kernel_size: 2 dilation: 2 group: 2", (1, 2, 6, 5),
     dict(dilation=(2, 2), group=2)),
    # Pointwise (1x1, stride 1, no pad): one GEMM on the blob's own layout.
    ("num_output: 5 kernel_size: 1", (2, 3, 4, 5), {}),
    ("num_output: 4 kernel_size: 1", (1, 40, 3, 3), {}),
    # Strided pointwise: a GEMM on the strided pixels.
    ("num_output: 4 kernel_size: 1 stride: 2", (2, 3, 5, 6), dict(stride=(2, 2))),
    ("num_output: 3 kernel_h: 1 kernel_w: 1 stride_h: 2 stride_w: 3", (2, 4, 5, 7),
     dict(stride=(2, 3))),
]


@pytest.mark.parametrize(("fields", "shape", "geometry"), CASES)
def test_forward_matches_direct_loops(fields, shape, geometry):
    """top = sum over the (dilated, strided, padded) window of W * x, plus b, per group."""
    layer, bottom, top, x = _layer(fields, shape)
    layer.forward(bottom, top)
    want = conv_reference(x, layer.blobs[0].data, layer.blobs[1].data, **geometry)
    assert top[0].data.shape == want.shape
    np.testing.assert_allclose(top[0].data, want, rtol=1e-4, atol=1e-4)


def test_output_size_formula():
    """out = floor((in + 2p - (d(k-1)+1)) / s) + 1 on each axis."""
    layer, _, top, _ = _layer("num_output: 5 kernel_size: 3 stride: 2 pad: 1 dilation: 2",
                              (1, 1, 10, 9))
    assert top[0].shape == [1, 5, (10 + 2 - 5) // 2 + 1, (9 + 2 - 5) // 2 + 1]
    assert layer.blobs[0].shape == [5, 1, 3, 3] and layer.blobs[1].shape == [5]


def test_no_bias_and_one_spatial_axis():
    """bias_term: false gives one blob; a 3-d bottom is a 1-d convolution over its last axis."""
    layer, bottom, top, x = _layer("num_output: 2 kernel_size: 3 bias_term: false pad: 1",
                                   (2, 3, 8))
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == [2, 3, 3]
    layer.forward(bottom, top)
    want = conv_reference(x[:, :, None, :], layer.blobs[0].data[:, :, None, :], None,
                          pad=(0, 1))
    np.testing.assert_allclose(top[0].data, want[:, :, 0, :], rtol=1e-4, atol=1e-4)


def test_axis_folds_leading_axes_into_the_batch():
    """With axis: 2 the axes before it are all batch axes."""
    layer, bottom, top, x = _layer("num_output: 2 kernel_size: 2 axis: 2", (2, 3, 2, 4, 4))
    layer.forward(bottom, top)
    want = conv_reference(x.reshape(6, 2, 4, 4), layer.blobs[0].data, layer.blobs[1].data)
    assert top[0].shape == [2, 3, 2, 3, 3]
    np.testing.assert_allclose(top[0].data.reshape(want.shape), want, rtol=1e-4, atol=1e-4)


def test_several_bottoms_share_the_weights():
    """Each bottom gets its own top, computed with the same weights."""
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                       'kernel_size: 2 weight_filler { type: "xavier" } }')
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 2, 4, 4)).astype(np.float32) for _ in range(2)]
    bottom = blobs_from(*xs)
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    for x, t in zip(xs, top, strict=True):
        want = conv_reference(x, layer.blobs[0].data, layer.blobs[1].data)
        np.testing.assert_allclose(t.data, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fields,shape", [
    ("num_output: 3 kernel_size: 3 pad: 1 stride: 2", (2, 2, 5, 5)),
    ("num_output: 4 kernel_h: 2 kernel_w: 3 group: 2 dilation: 2", (2, 4, 5, 6)),
    ("num_output: 2 kernel_size: 2", (2, 1, 3, 18)),
    # Enough channels that the bottom gradient is computed one kernel row at a time.
    ("num_output: 2 kernel_size: 2 pad: 1", (1, 16, 3, 3)),
    # Patch rows with groups, stride and dilation.
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1 stride: 2", (2, 24, 4, 5)),
    ("num_output: 2 kernel_size: 2 dilation: 2", (2, 16, 4, 4)),
    # Depthwise, with padding and stride, and without padding; pointwise.
    ("num_output: 3 kernel_size: 3 pad: 1 stride: 2 group: 3", (2, 3, 5, 6)),
    ("num_output: 2 kernel_size: 2 group: 2", (2, 2, 4, 4)),
    ("num_output: 3 kernel_size: 1", (2, 4, 3, 3)),
    ("num_output: 3 kernel_size: 1", (1, 4, 3, 3)),
    ("num_output: 3 kernel_size: 1 stride: 2", (2, 4, 5, 5)),
    ("num_output: 2 kernel_h: 1 kernel_w: 1 stride_h: 3 stride_w: 2", (2, 3, 7, 4)),
])
def test_gradients_match_numerical(fields, shape):
    """Backward gives d/dx, d/dW and d/db of sum(w_top * top)."""
    layer, bottom, top, _ = _layer(fields, shape)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


def test_param_gradients_accumulate_and_can_be_skipped():
    """Parameter diffs are added to (+=); param_propagate_down False leaves a diff alone."""
    layer, bottom, top, _ = _layer("num_output: 2 kernel_size: 2", (2, 2, 4, 4))
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [False], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.forward(bottom, top)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0], rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once[1], rtol=1e-5)
    layer.param_propagate_down = [False, False]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0], rtol=1e-5)


def _param_grad_reference(x, dy, w_shape, pad, group):
    """dW[o, c, i, j] = sum over samples and outputs of dy[o] * x[c] at offset (i, j) (stride
    1, float64), db[o] = sum of dy[o]: the parameter gradients written out directly."""
    m, cg, kh, kw = w_shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, oh, ow = dy.shape
    per_group = m // group
    dw = np.zeros(w_shape)
    for o in range(m):
        g = o // per_group
        for i in range(kh):
            for j in range(kw):
                window = xp[:, g * cg:(g + 1) * cg, i:i + oh, j:j + ow]
                dw[o, :, i, j] = np.einsum("nchw,nhw->c", window, dy[:, o])
    return dw, dy.astype(np.float64).sum(axis=(0, 2, 3))


@pytest.mark.parametrize(("fields", "shape", "pad", "group"), [
    # Few channels: per-sample columns, whose GEMM also carries the bias (a row of ones).
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (3, 2, 6, 5), 1, 2),
    ("num_output: 3 kernel_size: 2", (2, 1, 5, 5), 0, 1),
    # Many channels: patch rows, with the bias gradient as a product with ones.
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (2, 24, 5, 5), 1, 2),
    ("num_output: 3 kernel_size: 3 pad: 1 group: 3", (2, 3, 5, 5), 1, 3),  # depthwise
    ("num_output: 3 kernel_size: 1", (2, 4, 5, 5), 0, 1),  # pointwise
])
@pytest.mark.parametrize("wanted", [(True, True), (True, False), (False, True)])
def test_weight_and_bias_gradients_together_or_alone(fields, shape, pad, group, wanted):
    """d/dW and d/db match direct sums whether both are wanted (one GEMM yields both for
    per-sample columns) or only one of them; the other diff is left alone."""
    layer, bottom, top, x = _layer(fields, shape)
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].data.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.param_propagate_down = list(wanted)
    layer.backward(top, [False], bottom)
    dw, db = _param_grad_reference(x, dy, layer.blobs[0].data.shape, pad, group)
    for blob, want, reference in zip(layer.blobs, wanted, (dw, db), strict=True):
        expected = reference if want else np.zeros_like(reference)
        np.testing.assert_allclose(blob.diff, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("fields", "kind"), [
    ("num_output: 6 kernel_size: 3 pad: 1 group: 6", "depthwise"),
    ("num_output: 4 kernel_size: 1", "pointwise"),
    ("num_output: 6 kernel_size: 3 pad: 1 group: 3", "im2col"),
    ("num_output: 4 kernel_size: 1 stride: 2", "pointwise"),
    ("num_output: 4 kernel_size: 1 pad: 1", "im2col"),
    ("num_output: 4 kernel_size: 1 group: 2", "im2col"),
])
def test_depthwise_and_pointwise_layers_skip_im2col(fields, kind):
    """Only group == channels == num_output is depthwise, only a 1x1 unpadded ungrouped
    kernel (any stride) pointwise; everything else keeps im2col."""
    layer, _, _, _ = _layer(fields, (2, 6, 5, 5))
    assert layer._kind == kind


def test_pointwise_gradients_land_in_the_blobs_without_copies():
    """A 1x1 convolution's top and bottom diff are written by the GEMM itself: several bottoms
    sharing the weights each get their own gradient, and the weight gradient sums both."""
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 3 '
                       'kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } }')
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 4, 3, 3)).astype(np.float32) for _ in range(2)]
    bottom = blobs_from(*xs)
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    w = layer.blobs[0].data.reshape(3, 4)
    dys = [rng.standard_normal(t.data.shape).astype(np.float32) for t in top]
    for t, dy in zip(top, dys, strict=True):
        t.diff[...] = dy
    layer.backward(top, [True, True], bottom)
    want_w = sum(np.einsum("nmhw,nchw->mc", dy, x) for dy, x in zip(dys, xs, strict=True))
    np.testing.assert_allclose(layer.blobs[0].diff.reshape(3, 4), want_w, rtol=1e-5,
                               atol=1e-5)
    for b, dy in zip(bottom, dys, strict=True):
        np.testing.assert_allclose(b.diff, np.einsum("mc,nmhw->nchw", w, dy), rtol=1e-5,
                                   atol=1e-5)


# Columns larger than the budget are built a chunk of samples at a time (in forward, and again
# for the weight gradient). Each case: fields, bottom shape (5 samples), geometry, the bytes of
# one sample's columns (patch rows, or per-sample columns with a row of ones for the bias).
CHUNKED = [
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1 stride: 2", (5, 24, 5, 5),
     dict(stride=(2, 2), pad=(1, 1), group=2), 2 * 9 * 108 * 4),
    ("num_output: 3 kernel_size: 2 dilation: 2 pad: 1", (5, 16, 6, 5),
     dict(pad=(1, 1), dilation=(2, 2)), 30 * 64 * 4),
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (5, 2, 6, 5),
     dict(pad=(1, 1), group=2), 2 * 30 * 10 * 4),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (5, 3, 7, 7),
     dict(stride=(2, 2), pad=(1, 1)), 16 * 28 * 4),
]


@pytest.fixture
def chunked(monkeypatch):
    """Make every convolution chunk its columns, ``per_chunk`` samples of ``sample_bytes``."""
    def configure(per_chunk: int, sample_bytes: int) -> None:
        monkeypatch.setattr(conv, "_COL_BUDGET", 0)
        monkeypatch.setattr(conv, "_CHUNK_BYTES", per_chunk * sample_bytes)
    return configure


@pytest.mark.parametrize("per_chunk", [1, 2])
@pytest.mark.parametrize(("fields", "shape", "geometry", "sample_bytes"), CHUNKED)
def test_chunked_columns_give_the_same_convolution(chunked, per_chunk, fields, shape,
                                                   geometry, sample_bytes):
    """Built chunk by chunk (the last chunk shorter when 2 per chunk), the columns give the
    forward of the direct loops and gradients matching numerical ones."""
    chunked(per_chunk, sample_bytes)
    layer, bottom, top, x = _layer(fields, shape)
    assert layer._chunk == per_chunk
    layer.forward(bottom, top)
    want = conv_reference(x, layer.blobs[0].data, layer.blobs[1].data, **geometry)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-4, atol=1e-4)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


@pytest.mark.parametrize(("fields", "shape", "pad", "group", "sample_bytes"), [
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (5, 24, 5, 5), 1, 2, 2 * 25 * 108 * 4),
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (5, 2, 6, 5), 1, 2, 2 * 30 * 10 * 4),
])
@pytest.mark.parametrize("wanted", [(True, True), (True, False), (False, True)])
def test_chunked_weight_and_bias_gradients_sum_every_chunk(chunked, fields, shape, pad, group,
                                                           sample_bytes, wanted):
    """d/dW and d/db summed over chunks of 2, 2 and 1 samples match the direct sums over the
    whole batch; a gradient not wanted is left alone."""
    chunked(2, sample_bytes)
    layer, bottom, top, x = _layer(fields, shape)
    assert layer._chunk == 2
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].data.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.param_propagate_down = list(wanted)
    layer.backward(top, [False], bottom)
    dw, db = _param_grad_reference(x, dy, layer.blobs[0].data.shape, pad, group)
    for blob, want, reference in zip(layer.blobs, wanted, (dw, db), strict=True):
        expected = reference if want else np.zeros_like(reference)
        np.testing.assert_allclose(blob.diff, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("fields", "shape", "sample_bytes"), [
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1 stride: 2", (3, 24, 5, 5), 2 * 9 * 108 * 4),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (3, 3, 7, 7), 16 * 28 * 4),
])
def test_chunked_columns_follow_each_of_several_bottoms(chunked, fields, shape, sample_bytes):
    """Two bottoms sharing the weights, chunked: backward rebuilds each bottom's columns (the
    padded copy holds the last one forward saw) and the gradients match numerical ones."""
    chunked(2, sample_bytes)
    layer = make_layer(f'name: "c" type: "Convolution" convolution_param {{ {fields} '
                       'weight_filler { type: "gaussian" std: 0.5 } '
                       'bias_filler { type: "uniform" min: -1 max: 1 } }')
    rng = np.random.default_rng(5)
    bottom = blobs_from(*(rng.standard_normal(shape).astype(np.float32) for _ in range(2)))
    top = setup_layer(layer, bottom, num_top=2)
    assert layer._chunk == 2
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


# Stride 1 and an output at least the input's size: the bottom gradient is the convolution of
# the padded top gradient with the flipped kernels.
FLIPPED = [
    ("num_output: 32 kernel_size: 3 pad: 1", (2, 16, 5, 4)),
    ("num_output: 24 kernel_size: 3 pad: 2 dilation: 2 group: 2", (2, 24, 5, 5)),
    # wider than "same" on one axis: the top gradient is padded by 1 there, not 3
    ("num_output: 16 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 3", (2, 16, 4, 6)),
]


@pytest.mark.parametrize("one_per_chunk", [False, True])
@pytest.mark.parametrize(("fields", "shape"), FLIPPED)
def test_flipped_kernel_bottom_gradient_matches_numerical(chunked, one_per_chunk, fields,
                                                          shape):
    """The flipped-kernel bottom gradient, over the whole batch or a sample at a time,
    matches central differences."""
    if one_per_chunk:
        chunked(1, 1)
    layer, bottom, top, _ = _layer(fields, shape)
    assert layer._flipped_data_grad and (layer._col is None) == one_per_chunk
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


@pytest.mark.parametrize(("fields", "shape"), [
    ("num_output: 50 kernel_size: 5", (2, 20, 12, 12)),  # LeNet's conv2: output 8x8 < 12x12
    ("num_output: 32 kernel_size: 3 pad: 1 stride: 2", (2, 16, 6, 6)),
    ("num_output: 8 kernel_size: 3 pad: 1", (2, 16, 6, 6)),  # reversed rows too short
])
def test_flipped_kernel_bottom_gradient_only_where_it_costs_no_more(fields, shape):
    """Where the top is smaller than the bottom (more positions to compute), strided, or the
    reversed convolution's rows would be short, the bottom gradient stays col2im."""
    layer, _, _, _ = _layer(fields, shape)
    assert layer._patch_rows and not layer._flipped_data_grad


def test_bias_is_added_by_the_columns_gemm_and_weights_can_change():
    """With per-sample columns the bias rides in the GEMM: new weights and biases set between
    forwards are both used (the GEMM's copy of them is refreshed every forward)."""
    layer, bottom, top, x = _layer("num_output: 3 kernel_size: 3 pad: 1", (2, 2, 5, 5))
    layer.forward(bottom, top)
    layer.blobs[0].data[...] *= -2
    layer.blobs[1].data[...] += 3
    layer.forward(bottom, top)
    want = conv_reference(x, layer.blobs[0].data, layer.blobs[1].data, pad=(1, 1))
    np.testing.assert_allclose(top[0].data, want, rtol=1e-4, atol=1e-4)


def test_preloaded_weights_are_kept_and_checked():
    """Setup keeps existing blobs of the right shape and names a wrong one."""
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                       'kernel_size: 3 }')
    w, b = Blob((2, 1, 3, 3)), Blob((2,))
    w.data[...] = 7
    layer.blobs = [w, b]
    setup_layer(layer, blobs_from(np.zeros((1, 1, 4, 4), np.float32)))
    assert layer.blobs[0] is w and float(w.data[0, 0, 0, 0]) == 7
    bad = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                     'kernel_size: 3 }')
    bad.blobs = [Blob((2, 1, 2, 2)), Blob((2,))]
    with pytest.raises(ShapeError, match="layer 'c'.*parameter blob 0"):
        setup_layer(bad, blobs_from(np.zeros((1, 1, 4, 4), np.float32)))


def test_default_filler_is_zero():
    """Without weight_filler the weights start at zero (Caffe's constant 0 default)."""
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                       'kernel_size: 1 }')
    setup_layer(layer, blobs_from(np.ones((1, 1, 2, 2), np.float32)))
    assert not layer.blobs[0].data.any() and not layer.blobs[1].data.any()


@pytest.mark.parametrize(("fields", "shape", "message"), [
    ("num_output: 2 kernel_size: 3 group: 2", (1, 3, 5, 5), "not divisible by group"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 2, 5, 5), "num_output 3 is not divisible"),
    ("num_output: 2", (1, 1, 5, 5), "kernel_size is required"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5), "not both"),
    ("num_output: 2 kernel_size: 0", (1, 1, 5, 5), "must be positive"),
    ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 1, 5, 5),
     "once per spatial axis"),
    ("num_output: 2 kernel_size: 3", (1, 1, 3, 3, 3), "1-d and 2-d"),
    ("num_output: 2 kernel_size: 7", (1, 1, 5, 5), "larger than the padded input"),
    ("kernel_size: 3", (1, 1, 5, 5), "num_output must be positive"),
])
def test_bad_parameters_name_the_layer(fields, shape, message):
    """Invalid geometry raises a NetError that names the layer and the problem."""
    layer = make_layer(f'name: "bad" type: "Convolution" convolution_param {{ {fields} }}')
    with pytest.raises(NetError, match=f"layer 'bad'.*{message}"):
        setup_layer(layer, blobs_from(np.zeros(shape, np.float32)))


def test_bad_filler_names_the_layer_and_field():
    """A filler Caffe refuses is a NetError naming the layer and the filler field."""
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                       'kernel_size: 3 weight_filler { type: "xavier" sparse: 2 } }')
    with pytest.raises(NetError, match="layer 'c' .*weight_filler: .*does not support sparse"):
        setup_layer(layer, blobs_from(np.zeros((1, 1, 5, 5), np.float32)))
