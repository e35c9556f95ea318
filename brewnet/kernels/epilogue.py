"""A convolution's epilogue in one pass over its top: ``y = act(y·a + b)`` per channel,
``act`` Caffe's ReLU ``max(v, 0) + slope·min(v, 0)`` (``slope`` 1 is no activation: one of
the two terms is 0), with the ReLU layer's values at the edges (:func:`relu`).
``brewnet.layers.epilogue`` holds the NumPy body; the product is rounded before the add, as
there (no fused multiply-add), so both give the same values.
"""

from __future__ import annotations

import numpy as np

from . import kernel


@kernel
def relu(v, slope):  # pragma: no cover - compiled
    """``max(v, 0) + slope·min(v, 0)`` as the ReLU layer's NumPy gives it: NaN passes (numba's
    ``max`` would drop it), and with ``slope`` 0 a −inf becomes 0 (the formula's ``0·−inf``
    is NaN)."""
    zero = np.float32(0)
    if v > zero or v != v:
        return v
    if slope == zero:
        return zero
    return zero + slope * v


@kernel
def affine(y, a, b, slope):  # pragma: no cover - compiled
    """``y[n, g, c, s] = act(y[n, g, c, s] * a[g, c] + b[g, c])`` over ``(N, G, M/G, S)``,
    in place: with one array the compiler knows nothing overlaps and vectorizes the loop
    (about 4x faster than with an output that may alias the input)."""
    n, g, m, s = y.shape
    for i in range(n):
        for j in range(g):
            for c in range(m):
                ac, bc = a[j, c], b[j, c]
                for k in range(s):
                    y[i, j, c, k] = relu(y[i, j, c, k] * ac + bc, slope)
