"""Depthwise convolution's arithmetic (``group == channels == num_output``: one kh×kw filter per
channel), used by ``ConvolutionLayer`` in place of im2col + GEMM, whose stacked matmuls have an
inner dimension of one. Each kernel offset is one multiply-add over the whole batch: a shifted
(strided) window of the padded bottom times that offset's per-channel weight.

Shapes: ``xpad`` ``(N, C, Hp, Wp)`` (the padded bottom, or its gradient), ``w`` ``(C, kh, kw)``,
``out``/``dy`` ``(N, C, OH, OW)``. The compiled kernels (``brewnet.kernels.depthwise``) do the
same passes plane by plane, the channels split over the cores (``brewnet.cores``); these
NumPy bodies are their reference and serve CuPy too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import cores, kernels
from . import epilogue


def _windows(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
    """For each kernel offset (i, j) in row-major order, the index of its window in the padded
    plane, for an output of ``shape`` ``(N, C, OH, OW)``."""
    oh, ow = shape[2], shape[3]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, (Ellipsis, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def forward(xp: Any, xpad: Any, w: Any, out: Any, scratch: Any, stride: tuple[int, int],
            dilation: tuple[int, int]) -> None:
    """``out`` = the depthwise cross-correlation of ``xpad`` with ``w`` (``scratch`` is an
    ``out``-shaped buffer)."""
    if kernels.enabled(xp):
        from ..kernels.depthwise import forward_kernel
        run = forward_kernel(*w.shape[1:], *stride, *dilation)
        cores.split(xp, w.shape[0], lambda a, z: run(xpad, w, out, a, z))
        return
    kernel = w.shape[1:]
    for i, j, window in _windows(out.shape, kernel, stride, dilation):
        wij = w[:, i, j].reshape(1, -1, 1, 1)
        if i == 0 and j == 0:
            xp.multiply(xpad[window], wij, out=out)
        else:
            xp.multiply(xpad[window], wij, out=scratch)
            out += scratch


def forward_affine(xp: Any, x: Any, xpad: Any, pad: tuple[int, int], w: Any, out: Any,
                   scratch: Any, stride: tuple[int, int], dilation: tuple[int, int], a: Any,
                   b: Any, slope: np.float32) -> None:
    """``forward``, then ``out = act(out·a + b)`` per channel (``a``, ``b`` ``(C,)``;
    ``brewnet.layers.epilogue``), from the bottom ``x`` ``(N, C, H, W)`` padded by ``pad``.
    The kernel pads one plane at a time in cache and stores each output once; the NumPy
    body copies ``x`` into ``xpad`` (the padded buffer, None when ``pad`` is 0) first."""
    if kernels.enabled(xp):
        from ..kernels.depthwise import forward_affine_kernel
        run = forward_affine_kernel(*w.shape[1:], *stride, *dilation, *pad)
        cores.split(xp, w.shape[0], lambda p, z: run(x, w, a, b, slope, out, p, z))
        return
    if xpad is not None:
        ph, pw = pad
        xp.copyto(xpad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], x)
    forward(xp, x if xpad is None else xpad, w, out, scratch, stride, dilation)
    n, c = out.shape[:2]
    epilogue.apply(xp, out.reshape(n, 1, c, -1), a.reshape(1, c), b.reshape(1, c), slope)


def backward_data(xp: Any, dy: Any, w: Any, dxpad: Any, scratch: Any, stride: tuple[int, int],
                  dilation: tuple[int, int]) -> None:
    """``dxpad`` (overwritten) = the gradient of the padded bottom for top gradient ``dy``."""
    if kernels.enabled(xp):
        from ..kernels.depthwise import backward_data_kernel
        run = backward_data_kernel(*w.shape[1:], *stride, *dilation)
        cores.split(xp, w.shape[0], lambda a, z: run(dy, w, dxpad, a, z))
        return
    dxpad.fill(0)
    for i, j, window in _windows(dy.shape, w.shape[1:], stride, dilation):
        xp.multiply(dy, w[:, i, j].reshape(1, -1, 1, 1), out=scratch)
        dxpad[window] += scratch


def weight_grad(xp: Any, dy: Any, xpad: Any, wdiff: Any, scratch: Any,
                stride: tuple[int, int], dilation: tuple[int, int]) -> None:
    """Add the weight gradient ``(C, kh, kw)`` for top gradient ``dy`` into ``wdiff``."""
    if kernels.enabled(xp):
        from ..kernels.depthwise import weight_grad_kernel
        run = weight_grad_kernel(*wdiff.shape[1:], *stride, *dilation)
        cores.split(xp, wdiff.shape[0], lambda a, z: run(dy, xpad, wdiff, a, z))
        return
    n, c = dy.shape[:2]
    ones = xp.ones(dy.shape[2] * dy.shape[3], dtype=np.float32)
    for i, j, window in _windows(dy.shape, wdiff.shape[1:], stride, dilation):
        xp.multiply(xpad[window], dy, out=scratch)
        # A matrix-vector product with ones sums each plane far faster than sum(axis=(2, 3)).
        wdiff[:, i, j] += xp.matmul(scratch.reshape(n, c, -1), ones).sum(axis=0)
