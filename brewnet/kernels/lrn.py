"""Across-channel LRN's forward in one pass per channel (``brewnet.layers.lrn`` holds the
NumPy body it mirrors): the window sum of squares, ``scale = coef·sum + shift`` and ``y =
x·scale^-beta`` for a channel's pixels while they are in cache, where the NumPy body makes
ten passes over the blob (GoogLeNet's conv2/norm2 at batch 1: 1.65 ms). Each sum adds the
same squares in the NumPy body's order and scale^-beta uses the same formula
(``brewnet.layers.lrn.negative_power``), so both give the same bits.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import kernel


@cache
def across_forward_kernel(size: int, formula: int, keep: bool):
    """``forward(x, y, coef, shift, scale, powered, first, last)`` over the samples
    ``first:last`` of ``x``/``y`` ``(N, C, S)``, ``formula`` the code of the exponent's
    formula (``brewnet.layers.lrn.ROOT_POWERS``); with ``keep``, ``scale`` and ``powered``
    (scale^-beta, which backward reads; flat) are stored too, else not touched (a test of
    ``keep`` inside the loop kept the forward without stores from vectorizing: 4.6x
    slower)."""
    radius = (size - 1) // 2

    @kernel
    def forward(x, y, coef, shift, scale, powered, first, last):  # pragma: no cover
        n, c, s = x.shape
        acc = np.empty(s, dtype=np.float32)
        one = np.float32(1)
        for b in range(first, last):
            for ch in range(c):
                centre = x[b, ch]
                for p in range(s):
                    acc[p] = centre[p] * centre[p]
                # The NumPy body's window sum: the centre, then the channels d to the right
                # and to the left, for d = 1, 2, ...
                for d in range(1, radius + 1):
                    if ch + d < c:
                        right = x[b, ch + d]
                        for p in range(s):
                            acc[p] += right[p] * right[p]
                    if ch - d >= 0:
                        left = x[b, ch - d]
                        for p in range(s):
                            acc[p] += left[p] * left[p]
                out = y[b, ch]
                base = np.uint64((b * c + ch) * s)  # unsigned: no index wrapping to test
                for p in range(s):
                    v = acc[p] * coef + shift
                    if formula == 0:
                        root = np.sqrt(v)
                        power = one / (root * np.sqrt(root))
                    elif formula == 1:
                        power = one / np.sqrt(v)
                    else:
                        power = one / v
                    out[p] = centre[p] * power
                    if keep:
                        scale[base + np.uint64(p)] = v
                        powered[base + np.uint64(p)] = power

    return forward
