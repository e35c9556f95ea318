"""ReLU's passes over flat arrays, in blocks of ``BLOCK`` values. Per value the arithmetic is
the NumPy bodies' own, so the results are bit-identical to them. Each block is a slice, so
its loop counts from 0 (numba then adds no negative-index checks)."""

from __future__ import annotations

import numpy as np

from . import kernel
from .batch_norm import store
from .epilogue import relu

BLOCK = 1 << 12


@kernel
def relu_forward(x, y):  # pragma: no cover - compiled
    """``y = max(x, 0)`` as NumPy's ``maximum`` gives it: NaN passes, −0.0 becomes 0. Through
    a row buffer: in place (ResNet's case) the direct loop is not vectorized."""
    row = np.empty(BLOCK, dtype=np.float32)
    zero = np.float32(0)
    for start in range(0, x.size, BLOCK):
        xs = x[start:start + BLOCK]
        r = row[:xs.size]
        for k in range(xs.size):
            v = xs[k]
            r[k] = v if v > zero or v != v else zero
        store(r, y[start:start + xs.size])


@kernel
def relu_backward(dy, x, dx):  # pragma: no cover - compiled
    """``dx = dy·(x > 0)``, the mask cast to float32 as NumPy multiplies by a bool."""
    zero = np.float32(0)
    for start in range(0, x.size, BLOCK):
        xs, gs, ds = x[start:start + BLOCK], dy[start:start + BLOCK], dx[start:start + BLOCK]
        for k in range(xs.size):
            ds[k] = gs[k] * np.float32(xs[k] > zero)


@kernel
def add_relu(a, b, y, slope):  # pragma: no cover - compiled
    """``y = act(a + b)``, ``act`` the ReLU layer's (:func:`brewnet.kernels.epilogue.relu`):
    an Eltwise sum and the ReLU in place on its top in one pass. A direct loop: LLVM
    vectorizes it behind a run-time overlap check (ResNet's top is a blob of its own; in
    place it runs scalar), where a row buffer's extra copy cost a third more."""
    for k in range(y.size):
        y[k] = relu(a[k] + b[k], slope)
