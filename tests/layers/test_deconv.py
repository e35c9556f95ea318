"""Deconvolution: Caffe's transposed convolution against a direct scatter loop; gradients;
bilinear-filler upsampling."""

import numpy as np
import pytest

from brewnet.errors import NetError
from brewnet.layers import conv
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def deconv_reference(x, weight, bias, stride, pad, dilation, group):
    """The scatter definition: every bottom pixel adds ``value * W[c]`` to a kernel window of
    the top that starts at ``i * stride - pad``."""
    n, c, h, w = x.shape
    _, mg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    m = mg * group
    oh = sh * (h - 1) + dh * (kh - 1) + 1 - 2 * ph
    ow = sw * (w - 1) + dw * (kw - 1) + 1 - 2 * pw
    y = np.zeros((n, m, oh, ow))
    cg = c // group
    for b in range(n):
        for ci in range(c):
            g = ci // cg
            for i in range(h):
                for j in range(w):
                    for mo in range(mg):
                        for a in range(kh):
                            for e in range(kw):
                                r, s = i * sh - ph + a * dh, j * sw - pw + e * dw
                                if 0 <= r < oh and 0 <= s < ow:
                                    y[b, g * mg + mo, r, s] += x[b, ci, i, j] * weight[ci, mo, a, e]
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def with_random_weights(fields, shape, seed=0):
    rng = np.random.default_rng(seed)
    layer = make_layer(f'type: "Deconvolution" convolution_param {{ {fields} '
                       'weight_filler { type: "gaussian" std: 1 } '
                       'bias_filler { type: "gaussian" std: 1 } }')
    x = rng.standard_normal(shape).astype(np.float32)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    return layer, bottom, top, x


CASES = [
    # fields, bottom shape, (stride, pad, dilation)
    ("num_output: 3 kernel_size: 3", (2, 2, 4, 5), ((1, 1), (0, 0), (1, 1))),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 4, 3), ((2, 2), (1, 1), (1, 1))),
    ("num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2", (1, 4, 3, 3),
     ((2, 2), (1, 1), (1, 1))),
    ("num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 1 pad_h: 0 pad_w: 1",
     (2, 3, 3, 4), ((3, 1), (0, 1), (1, 1))),
    ("num_output: 2 kernel_size: 3 dilation: 2 stride: 2", (1, 2, 3, 3),
     ((2, 2), (0, 0), (2, 2))),
    # many output channels per group: the convolution's patch-row layout
    ("num_output: 16 kernel_size: 3 stride: 2 pad: 1", (2, 3, 3, 4), ((2, 2), (1, 1), (1, 1))),
    ("num_output: 32 kernel_size: 3 group: 2", (1, 4, 3, 3), ((1, 1), (0, 0), (1, 1))),
    # stride 1, "same" padding: the forward is the convolution's flipped-kernel bottom gradient
    ("num_output: 16 kernel_size: 3 pad: 1", (2, 12, 4, 4), ((1, 1), (1, 1), (1, 1))),
]


@pytest.mark.parametrize("fields,shape,geometry", CASES)
def test_forward_matches_scatter_loops(fields, shape, geometry):
    """Caffe's Deconvolution: weights (C_in, M/group, kh, kw); out = s(in-1) + d(k-1)+1 - 2p."""
    layer, bottom, top, x = with_random_weights(fields, shape)
    layer.forward(bottom, top)
    group = int(fields.split("group: ")[1].split()[0]) if "group" in fields else 1
    expected = deconv_reference(x, layer.blobs[0].data, layer.blobs[1].data, *geometry, group)
    assert top[0].data.shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fields,shape,geometry", CASES[:4] + CASES[5:6] + CASES[7:])
def test_gradients_match_numerical(fields, shape, geometry):
    """Deconvolution backward: data gradient = convolution forward, weight and bias grads."""
    layer, bottom, top, _ = with_random_weights(fields, shape, seed=3)
    check_gradient(layer, bottom, top)


def test_weight_shape_and_no_bias():
    """Caffe keeps the convolution blob layout with roles swapped: (C_in, M/group, kh, kw)."""
    layer = make_layer('type: "Deconvolution" convolution_param { num_output: 6 kernel_size: 2 '
                       'group: 3 bias_term: false weight_filler { type: "gaussian" } }')
    bottom = blobs_from(np.ones((1, 9, 2, 2), np.float32))
    top = setup_layer(layer, bottom)
    assert [tuple(b.shape) for b in layer.blobs] == [(9, 2, 2, 2)]
    assert tuple(top[0].shape) == (1, 6, 3, 3)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_filler_upsamples_bilinearly(factor):
    """FCN's recipe: bilinear filler, group = channels, kernel 2f - f%2, stride f,
    pad ceil((f-1)/2) gives f-times bilinear upsampling (half-pixel centres)."""
    c, h, w = 2, 6, 7
    k, pad = 2 * factor - factor % 2, -(-(factor - 1) // 2)
    layer = make_layer(f'type: "Deconvolution" convolution_param {{ num_output: {c} group: {c} '
                       f'kernel_size: {k} stride: {factor} pad: {pad} bias_term: false '
                       'weight_filler { type: "bilinear" } }')
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x = np.stack([2.0 * rows - cols + 1, 0.5 * rows + 3 * cols]).astype(np.float32)[None]
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert tuple(top[0].shape) == (1, c, h * factor, w * factor)
    # Output pixel o sits at input coordinate (o + 0.5) / f - 0.5; a linear ramp is reproduced
    # exactly wherever the interpolation needs no value from beyond the image.
    u = (np.arange(h * factor) + 0.5) / factor - 0.5
    v = (np.arange(w * factor) + 0.5) / factor - 0.5
    uu, vv = np.meshgrid(u, v, indexing="ij")
    expected = np.stack([2.0 * uu - vv + 1, 0.5 * uu + 3 * vv])
    inside = (uu >= 0) & (uu <= h - 1) & (vv >= 0) & (vv <= w - 1)
    np.testing.assert_allclose(top[0].data[0][:, inside], expected[:, inside], atol=1e-4)


def test_pad_larger_than_output_is_an_error():
    """A pad that crops the whole output is a shape error naming the layer."""
    layer = make_layer('type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 1 '
                       'pad: 1 }')
    with pytest.raises(NetError, match="pad"):
        setup_layer(layer, blobs_from(np.ones((1, 1, 1, 1), np.float32)))


def test_several_bottoms_share_the_weights():
    """As Convolution: each bottom gets its own top, all through the one set of weights."""
    layer = make_layer('type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 3 '
                       'stride: 2 weight_filler { type: "gaussian" std: 1 } '
                       'bias_filler { type: "gaussian" std: 1 } }')
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((2, 2, 3, 4)).astype(np.float32) for _ in range(2)]
    bottom = blobs_from(*xs)
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    for x, t in zip(xs, top, strict=True):
        expected = deconv_reference(x, layer.blobs[0].data, layer.blobs[1].data, (2, 2), (0, 0),
                                    (1, 1), 1)
        np.testing.assert_allclose(t.data, expected, rtol=1e-4, atol=1e-4)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("fields,shape,geometry", [CASES[1], CASES[5], CASES[7]])
def test_chunked_columns_give_the_same_deconvolution(monkeypatch, fields, shape, geometry):
    """With the columns of the top diff built a sample at a time (few-channel and patch-row
    layouts, and the flipped-kernel forward), forward and gradients are unchanged."""
    monkeypatch.setattr(conv, "_COL_BUDGET", 0)
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)
    layer, bottom, top, x = with_random_weights(fields, shape, seed=3)
    assert layer._chunk == 1
    layer.forward(bottom, top)
    expected = deconv_reference(x, layer.blobs[0].data, layer.blobs[1].data, *geometry, 1)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-4, atol=1e-4)
    check_gradient(layer, bottom, top)
