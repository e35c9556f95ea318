"""Im2col: Caffe's column order against direct loops; col2im as the gradient."""

import numpy as np
import pytest

from brewnet.errors import NetError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def im2col_reference(x, kernel, stride, pad, dilation):
    """Caffe's im2col loops: row (c*kh + i)*kw + j, zero outside the image."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    top = np.zeros((n, c * kh * kw, oh, ow), np.float32)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for z in range(ow):
                            r, s = y * sh - ph + i * dh, z * sw - pw + j * dw
                            if 0 <= r < h and 0 <= s < w:
                                top[b, (ch * kh + i) * kw + j, y, z] = x[b, ch, r, s]
    return top


CASES = [
    ("kernel_size: 3", (2, 2, 5, 4), (3, 3), (1, 1), (0, 0), (1, 1)),
    ("kernel_size: 3 stride: 2 pad: 1", (1, 3, 5, 6), (3, 3), (2, 2), (1, 1), (1, 1)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0", (2, 2, 4, 7),
     (2, 3), (1, 2), (1, 0), (1, 1)),
    ("kernel_size: 2 dilation: 2 pad: 1", (1, 2, 5, 5), (2, 2), (1, 1), (1, 1), (2, 2)),
]


@pytest.mark.parametrize("fields,shape,kernel,stride,pad,dilation", CASES)
def test_forward_matches_loops(fields, shape, kernel, stride, pad, dilation):
    """Caffe's Im2col: top (N, C*kh*kw, OH, OW), rows in (c, i, j) order, zero padding."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = make_layer(f'type: "Im2col" convolution_param {{ {fields} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, im2col_reference(x, kernel, stride, pad,
                                                                dilation))


@pytest.mark.parametrize("fields,shape,kernel,stride,pad,dilation", CASES)
def test_gradient_is_col2im(fields, shape, kernel, stride, pad, dilation):
    """Im2col's backward is col2im: each bottom cell sums the diffs of every patch holding it."""
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    layer = make_layer(f'type: "Im2col" convolution_param {{ {fields} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_kernel_is_required():
    """Im2col reads the kernel from convolution_param like Convolution."""
    layer = make_layer('type: "Im2col" convolution_param { stride: 2 }')
    with pytest.raises(NetError, match="kernel_size"):
        setup_layer(layer, blobs_from(np.zeros((1, 1, 4, 4), np.float32)))
