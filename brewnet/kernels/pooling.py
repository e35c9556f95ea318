"""MAX and AVE pooling windows ``(P, H, W)`` -> ``(P, OH, OW)``, compiled per kernel and stride.

The layer (``brewnet.layers.pooling``) hands these kernels the frame its NumPy body works on:
the bottom itself, or its copy padded with -inf (MAX) or 0 (AVE), with every window at
``(o_h * stride_h, o_w * stride_w)`` inside it. So the results are the NumPy body's: MAX keeps
the first maximum in row-major window order (strict ``>``, as Caffe) and records its offset
``i * kw + j``; AVE adds in the same order and divides by the same divisor. One difference: a
NaN never wins a MAX window here (Caffe's rule), where the NumPy body's maximum propagates it.

Each kernel is a closure over the kernel and stride, so its window loops have constant trip
counts and unroll into straight, branch-free code; that is what beats the NumPy passes.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import kernel


@cache
def max_forward_kernel(kh: int, kw: int, sh: int, sw: int):
    """``forward(source, y, argmax)`` for this kernel and stride, over windows at
    ``(o_h * sh, o_w * sw)`` that all lie inside ``source`` (the caller pads it with -inf)."""

    @kernel
    def forward(source, y, argmax):  # pragma: no cover - compiled
        planes, oh, ow = y.shape
        for p in range(planes):
            for r in range(oh):
                for c in range(ow):
                    best = np.float32(-np.inf)
                    arg = 0
                    # Constant trip counts (closure values) unroll; the select on ``better``
                    # stays branch-free, which matters as a window's winner is unpredictable.
                    for i in range(kh):
                        for j in range(kw):
                            v = source[p, r * sh + i, c * sw + j]
                            better = v > best
                            arg += better * (i * kw + j - arg)
                            best = v if better else best
                    y[p, r, c] = best
                    argmax[p, r, c] = arg

    return forward


@cache
def max_backward_kernel(kh: int, kw: int, sh: int, sw: int, tiles: bool):
    """``backward(dy, argmax, grad)``: each top diff to its window's argmax in ``grad`` (the
    forward's frame, overwritten). ``tiles``: the windows are disjoint and cover ``grad``, so
    every cell is written once and no zeroing pass is needed."""

    @kernel
    def backward(dy, argmax, grad):  # pragma: no cover - compiled
        planes, oh, ow = dy.shape
        if not tiles:
            grad[...] = 0
        for p in range(planes):
            for r in range(oh):
                for i in range(kh):  # one gradient row at a time: its cells in memory order
                    for c in range(ow):
                        d = dy[p, r, c]
                        a = argmax[p, r, c]
                        for j in range(kw):
                            # A multiply by the hit, as the NumPy body: branch-free.
                            routed = d * np.float32(a == i * kw + j)
                            if tiles:
                                grad[p, r * sh + i, c * sw + j] = routed
                            else:
                                grad[p, r * sh + i, c * sw + j] += routed

    return backward


@cache
def ave_forward_kernel(kh: int, kw: int, sh: int, sw: int):
    """``forward(source, y, divisor)``: window sums over ``source`` (the caller pads it with
    zeros) divided by ``divisor`` ``(OH, OW)``."""

    @kernel
    def forward(source, y, divisor):  # pragma: no cover - compiled
        planes, oh, ow = y.shape
        for p in range(planes):
            for r in range(oh):
                for c in range(ow):
                    total = np.float32(0)
                    for i in range(kh):
                        for j in range(kw):
                            total += source[p, r * sh + i, c * sw + j]
                    y[p, r, c] = total / divisor[r, c]

    return forward


@cache
def ave_backward_kernel(kh: int, kw: int, sh: int, sw: int, tiles: bool):
    """``backward(dy, divisor, grad)``: ``dy / divisor`` to every cell of each window in
    ``grad`` (overwritten); ``tiles`` as for MAX."""

    @kernel
    def backward(dy, divisor, grad):  # pragma: no cover - compiled
        planes, oh, ow = dy.shape
        if not tiles:
            grad[...] = 0
        for p in range(planes):
            for r in range(oh):
                for c in range(ow):
                    share = dy[p, r, c] / divisor[r, c]
                    for i in range(kh):
                        for j in range(kw):
                            if tiles:
                                grad[p, r * sh + i, c * sw + j] = share
                            else:
                                grad[p, r * sh + i, c * sw + j] += share

    return backward
