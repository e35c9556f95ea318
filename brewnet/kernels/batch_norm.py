"""BatchNorm and Scale over ``(N, C, S)`` arrays in fewer passes than the NumPy bodies
(BatchNorm forward: two reading passes for the statistics and one writing both outputs,
against about ten; backward: one for both sums and one writing). They walk the channels
sample by sample, in memory order (a channel at a time was slower: short strided runs
defeat prefetching). Serial: cut over two threads between a net's GEMMs they ran slower,
next to OpenBLAS's spinning idle worker (benchmarks/README.md).

Sums are float64, vectorized (their order is LLVM's; in float64 its effect lies far below
float32's rounding); NumPy's float32 pairwise sums round differently, so statistics may
differ from the NumPy bodies' in the last bit. The element-wise arithmetic per value is the
bodies' own, in float32. Rows are written through a row buffer: a loop whose output may be
its input (in place) is not vectorized by LLVM."""

from __future__ import annotations

from functools import partial

import numpy as np

from . import kernel

summed = partial(kernel, reassociate=True)


@summed
def _sum(a):  # pragma: no cover - compiled
    """Σ a (one row) in float64, vectorized."""
    t = 0.0
    for k in range(a.size):
        t += np.float64(a[k])
    return t


@summed
def _sum_and_dot(a, c):  # pragma: no cover - compiled
    """(Σ a, Σ a·c) of rows in float64, each product exact, in one read of both."""
    t = u = 0.0
    for k in range(a.size):
        v = np.float64(a[k])
        t += v
        u += v * np.float64(c[k])
    return t, u


@summed
def _centred_squares(a, mu):  # pragma: no cover - compiled
    """Σ (a − mu)² (one row) in float64, the difference taken in float32 as the body's."""
    t = 0.0
    for k in range(a.size):
        d = np.float64(a[k] - mu)
        t += d * d
    return t


@kernel
def store(row, out):  # pragma: no cover - compiled
    """``out[:] = row``, as a loop (numba's slice assignment does not vectorize)."""
    for k in range(out.size):
        out[k] = row[k]


@kernel
def forward(x, norm, y, mean, var, std, eps):  # pragma: no cover - compiled
    """Batch statistics: ``mean`` and biased ``var`` (C,) two-pass as Caffe,
    ``std = sqrt(var + eps)`` (1, C, 1), ``norm = (x − mean)/std`` and ``y = norm``. ``y`` may
    be ``x``."""
    n, c, s = x.shape
    m = n * s
    sums = np.zeros(c)
    for b in range(n):
        for ch in range(c):
            sums[ch] += _sum(x[b, ch])
    for ch in range(c):
        mean[ch] = np.float32(sums[ch] / m)
    sums[:] = 0
    for b in range(n):
        for ch in range(c):
            sums[ch] += _centred_squares(x[b, ch], mean[ch])
    for ch in range(c):
        var[ch] = np.float32(sums[ch] / m)
        std[0, ch, 0] = np.sqrt(var[ch] + eps)
    for b in range(n):
        for ch in range(c):
            xr, nr = x[b, ch], norm[b, ch]
            mu, d = mean[ch], std[0, ch, 0]
            for k in range(s):
                nr[k] = (xr[k] - mu) / d
            store(nr, y[b, ch])  # after the row is read: y may be x


@kernel
def backward(dy, y, std, dx):  # pragma: no cover - compiled
    """``dx = (dy − (y·mean(dy·y) + mean(dy))) / std``, the means over (N, S). ``dx`` may be
    ``dy``: the sums are taken before it is written."""
    n, c, s = dy.shape
    m = n * s
    sums = np.zeros((c, 2))
    for b in range(n):
        for ch in range(c):
            t, u = _sum_and_dot(dy[b, ch], y[b, ch])
            sums[ch, 0] += t
            sums[ch, 1] += u
    row = np.empty(s, dtype=np.float32)
    for b in range(n):
        for ch in range(c):
            mean_dy = np.float32(sums[ch, 0] / m)
            mean_dyy = np.float32(sums[ch, 1] / m)
            gr, yr, d = dy[b, ch], y[b, ch], std[0, ch, 0]
            for k in range(s):
                row[k] = (gr[k] - (yr[k] * mean_dyy + mean_dy)) / d
            store(row, dx[b, ch])


@kernel
def scale_forward(x, scale, bias, y):  # pragma: no cover - compiled
    """``y = x·scale (+ bias)``; ``bias`` empty for none, ``y`` may be ``x``."""
    n, c, s = x.shape
    row = np.empty(s, dtype=np.float32)
    for b in range(n):
        for ch in range(c):
            xr, a = x[b, ch], scale[ch]
            if bias.size > 0:
                offset = bias[ch]
                for k in range(s):
                    row[k] = xr[k] * a + offset
            else:
                for k in range(s):
                    row[k] = xr[k] * a
            store(row, y[b, ch])


@kernel
def scale_backward(dy, x, scale, scale_grad, bias_grad, dx):  # pragma: no cover
    """``scale_grad += Σ dy·x``, ``bias_grad += Σ dy`` (each skipped when its array is empty)
    and ``dx = dy·scale`` (skipped when ``dx`` is empty). ``dx`` may be ``dy``: the sums are
    taken before it is written."""
    n, c, s = dy.shape
    if scale_grad.size > 0 or bias_grad.size > 0:
        sums = np.zeros((c, 2))
        for b in range(n):
            for ch in range(c):
                t, u = _sum_and_dot(dy[b, ch], x[b, ch])
                sums[ch, 0] += t
                sums[ch, 1] += u
        for ch in range(c):
            if bias_grad.size > 0:
                bias_grad[ch] += np.float32(sums[ch, 0])
            if scale_grad.size > 0:
                scale_grad[ch] += np.float32(sums[ch, 1])
    if dx.size > 0:
        row = np.empty(s, dtype=np.float32)
        for b in range(n):
            for ch in range(c):
                gr, a = dy[b, ch], scale[ch]
                for k in range(s):
                    row[k] = gr[k] * a
                store(row, dx[b, ch])
