"""A convolution's epilogue in one pass over its top: ``y = act(y·a + b)`` per channel,
``act`` Caffe's ReLU ``max(v, 0) + slope·min(v, 0)`` (``slope`` 1 is no activation: one of
the two terms is 0). ``brewnet.layers.epilogue`` holds the NumPy body; the product is rounded
before the add, as there (no fused multiply-add), so both give the same values.
"""

from __future__ import annotations

import numpy as np

from . import kernel


@kernel
def affine(y, a, b, slope):  # pragma: no cover - compiled
    """``y[n, g, c, s] = act(y[n, g, c, s] * a[g, c] + b[g, c])`` over ``(N, G, M/G, S)``,
    in place: with one array the compiler knows nothing overlaps and vectorizes the loop
    (about 4x faster than with an output that may alias the input)."""
    n, g, m, s = y.shape
    zero = np.float32(0)
    for i in range(n):
        for j in range(g):
            for c in range(m):
                ac, bc = a[j, c], b[j, c]
                for k in range(s):
                    v = y[i, j, c, k] * ac + bc
                    y[i, j, c, k] = max(v, zero) + slope * min(v, zero)
