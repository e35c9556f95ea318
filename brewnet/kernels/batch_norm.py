"""BatchNorm and Scale over ``(N, C, S)`` arrays in fewer passes than the NumPy bodies
(BatchNorm forward: one reading pass for the statistics and one writing both outputs,
against about ten; backward: one for both sums and one writing), and BatchNorm with the
Scale and ReLU in place after it in those same passes (``forward_affine``,
``affine_backward``: the training chains of ``brewnet.net.fusion``). They walk the channels
sample by sample, in memory order (a channel at a time was slower: short strided runs
defeat prefetching). Each call covers the channels ``first:last`` only: a layer gives each
core its own channels (``brewnet.cores``), which changes no sum and no value.

Sums are float64, vectorized (their order is LLVM's; in float64 its effect lies far below
float32's rounding); NumPy's float32 pairwise sums round differently, so statistics may
differ from the NumPy bodies' in the last bit. The element-wise arithmetic per value is the
bodies' own, in float32. Rows are written through a row buffer, or rewritten in place as
one array argument: a loop whose output may be its input (in place) is not vectorized by
LLVM."""

from __future__ import annotations

from functools import partial

import numpy as np

from . import kernel
from .epilogue import relu

summed = partial(kernel, reassociate=True)


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
def _shifted_sums(a, k):  # pragma: no cover - compiled
    """(Σ (a − k), Σ (a − k)²) of one row in float64: both moments in one read. ``k`` is a
    value of the channel, so the squares do not cancel when the mean is far from 0 against
    the spread (raw Σa² would)."""
    t = u = 0.0
    for i in range(a.size):
        d = np.float64(a[i]) - k
        t += d
        u += d * d
    return t, u


@kernel
def store(row, out):  # pragma: no cover - compiled
    """``out[:] = row``, as a loop (numba's slice assignment does not vectorize)."""
    for k in range(out.size):
        out[k] = row[k]


@kernel
def statistics(x, mean, var, std, eps, first, last):  # pragma: no cover - compiled
    """Batch statistics of ``x`` (N, C, S): ``mean`` and biased ``var`` (C,), ``std =
    sqrt(var + eps)`` (1, C, 1), from float64 sums of the values shifted by the channel's
    first value, in one read of ``x``: Caffe's two passes give the same up to float32
    rounding (the shift keeps the variance from cancelling as raw squares would)."""
    n, c, s = x.shape
    m = n * s
    sums = np.zeros((c, 2))
    shift = np.zeros(c)
    if m > 0:
        for ch in range(first, last):
            shift[ch] = np.float64(x[0, ch, 0])
    for b in range(n):
        for ch in range(first, last):
            t, u = _shifted_sums(x[b, ch], shift[ch])
            sums[ch, 0] += t
            sums[ch, 1] += u
    for ch in range(first, last):
        d = sums[ch, 0] / m  # the mean minus the shift
        mean[ch] = np.float32(shift[ch] + d)
        var[ch] = np.float32(max(sums[ch, 1] / m - d * d, 0.0))
        std[0, ch, 0] = np.sqrt(var[ch] + eps)


@kernel
def forward(x, norm, y, mean, var, std, eps, first, last):  # pragma: no cover - compiled
    """:func:`statistics`, ``norm = (x − mean)/std`` and ``y = norm``. ``y`` may be ``x``."""
    statistics(x, mean, var, std, eps, first, last)
    n, c, s = x.shape
    for b in range(n):
        for ch in range(first, last):
            xr, nr = x[b, ch], norm[b, ch]
            mu, d = mean[ch], std[0, ch, 0]
            for k in range(s):
                nr[k] = (xr[k] - mu) / d
            store(nr, y[b, ch])  # after the row is read: y may be x


@kernel
def _normalize_row(xy, mu, d, a, offset, bias, slope, norm):  # pragma: no cover - compiled
    """``norm = (xy − mu)/d``, then ``xy = act(norm·a + offset)`` in place (``bias`` false:
    no ``+ offset``; ``slope`` NaN: no ReLU), one row. One array in and out: LLVM vectorizes
    it (an output that may alias the input would run scalar)."""
    for k in range(xy.size):
        v = (xy[k] - mu) / d
        norm[k] = v
        v = v * a + offset if bias else v * a
        xy[k] = relu(v, slope) if slope == slope else v


@kernel
def forward_affine(x, norm, y, mean, var, std, eps, scale, bias, slope, first,
                   last):  # pragma: no cover - compiled
    """:func:`forward` with a Scale and a ReLU after it in the same pass: ``y = act(norm·scale
    + bias)`` per channel, each value as :func:`scale_forward` and the ReLU layer compute
    it (``bias`` empty: none; ``slope`` NaN: no ReLU). ``y`` may be ``x``."""
    statistics(x, mean, var, std, eps, first, last)
    n, c, s = x.shape
    in_place = x.ctypes.data == y.ctypes.data
    for b in range(n):
        for ch in range(first, last):
            if not in_place:
                store(x[b, ch], y[b, ch])
            offset = bias[ch] if bias.size > 0 else np.float32(0)
            _normalize_row(y[b, ch], mean[ch], std[0, ch, 0], scale[ch], offset,
                           bias.size > 0, slope, norm[b, ch])


@kernel
def backward(dy, y, std, dx, first, last):  # pragma: no cover - compiled
    """``dx = (dy − (y·mean(dy·y) + mean(dy))) / std``, the means over (N, S). ``dx`` may be
    ``dy``: the sums are taken before it is written."""
    n, c, s = dy.shape
    m = n * s
    sums = np.zeros((c, 2))
    for b in range(n):
        for ch in range(first, last):
            t, u = _sum_and_dot(dy[b, ch], y[b, ch])
            sums[ch, 0] += t
            sums[ch, 1] += u
    row = np.empty(s, dtype=np.float32)
    for b in range(n):
        for ch in range(first, last):
            mean_dy = np.float32(sums[ch, 0] / m)
            mean_dyy = np.float32(sums[ch, 1] / m)
            gr, yr, d = dy[b, ch], y[b, ch], std[0, ch, 0]
            for k in range(s):
                row[k] = (gr[k] - (yr[k] * mean_dyy + mean_dy)) / d
            store(row, dx[b, ch])


@kernel
def scale_forward(x, scale, bias, y, first, last):  # pragma: no cover - compiled
    """``y = x·scale (+ bias)``; ``bias`` empty for none, ``y`` may be ``x``."""
    n, c, s = x.shape
    row = np.empty(s, dtype=np.float32)
    for b in range(n):
        for ch in range(first, last):
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
def scale_backward(dy, x, scale, scale_grad, bias_grad, dx, first,
                   last):  # pragma: no cover - compiled
    """``scale_grad += Σ dy·x``, ``bias_grad += Σ dy`` (each skipped when its array is empty)
    and ``dx = dy·scale`` (skipped when ``dx`` is empty). ``dx`` may be ``dy``: the sums are
    taken before it is written."""
    n, c, s = dy.shape
    if scale_grad.size > 0 or bias_grad.size > 0:
        sums = np.zeros((c, 2))
        for b in range(n):
            for ch in range(first, last):
                t, u = _sum_and_dot(dy[b, ch], x[b, ch])
                sums[ch, 0] += t
                sums[ch, 1] += u
        for ch in range(first, last):
            if bias_grad.size > 0:
                bias_grad[ch] += np.float32(sums[ch, 0])
            if scale_grad.size > 0:
                scale_grad[ch] += np.float32(sums[ch, 1])
    if dx.size > 0:
        row = np.empty(s, dtype=np.float32)
        for b in range(n):
            for ch in range(first, last):
                gr, a = dy[b, ch], scale[ch]
                for k in range(s):
                    row[k] = gr[k] * a
                store(row, dx[b, ch])


@summed
def _masked_sums(dy, y, slope, keep, c):  # pragma: no cover - compiled
    """(Σ dz, Σ dz·c) in float64 with ``dz = dy·(keep where y > 0, else slope)``, one row:
    :func:`_sum_and_dot` behind an in-place ReLU's backward."""
    t = u = 0.0
    for k in range(dy.size):
        v = np.float64(dy[k] * (keep if y[k] > np.float32(0) else slope))
        t += v
        u += v * np.float64(c[k])
    return t, u


@kernel
def _gradient_row(g, y, slope, keep, a, scaled, normalized, mean_gn, mean_g, d,
                  norm):  # pragma: no cover - compiled
    """One row of :func:`affine_backward` in place on ``g`` (the top's gradient): ``dz``,
    masked by the ReLU (``slope`` NaN: none); with ``scaled`` ``dz·a``; with ``normalized``
    BatchNorm's ``(dz·a − (norm·mean_gn + mean_g))/d``."""
    for k in range(g.size):
        v = g[k] * (keep if y[k] > np.float32(0) else slope) if slope == slope else g[k]
        if scaled:
            v = v * a
        if normalized:
            v = (v - (norm[k] * mean_gn + mean_g)) / d
        g[k] = v


@kernel
def affine_backward(dy, y, norm, std, scale, slope, scale_grad, bias_grad, dx,
                    dtop, first, last):  # pragma: no cover - compiled
    """Backward of :func:`forward_affine` in two passes, from the top's gradient ``dy`` and
    values ``y`` (read only for the ReLU's mask; ``slope`` NaN: no ReLU). With ``dz`` the
    gradient below the ReLU: ``bias_grad += Σ dz`` and ``scale_grad += Σ dz·norm`` (Scale's),
    ``dx = (g − (norm·mean(g·norm) + mean(g)))/std`` with ``g = dz·scale`` (BatchNorm's; its
    means are ``scale`` times Scale's sums over N·S), and ``dy`` left as the unfused layers
    leave it: ``dtop`` "scaled" (``g``), "masked" (``dz``) or "" (untouched). Each gradient
    is skipped when its array is empty; ``dx`` may be ``dy``."""
    n, c, s = dy.shape
    m = n * s
    relu_in = slope == slope
    # The ReLU's factor where its input is positive, as the ReLU layer's backward computes
    # it: (1 − slope) + slope, which float32 may not round to exactly 1.
    keep = (np.float32(1) - slope) + slope if relu_in else np.float32(1)
    sums = np.zeros((c, 2))
    for b in range(n):
        for ch in range(first, last):
            if relu_in:
                t, u = _masked_sums(dy[b, ch], y[b, ch], slope, keep, norm[b, ch])
            else:
                t, u = _sum_and_dot(dy[b, ch], norm[b, ch])
            sums[ch, 0] += t
            sums[ch, 1] += u
    means = np.empty((c, 2), dtype=np.float32)
    for ch in range(first, last):
        if bias_grad.size > 0:
            bias_grad[ch] += np.float32(sums[ch, 0])
        if scale_grad.size > 0:
            scale_grad[ch] += np.float32(sums[ch, 1])
        means[ch, 0] = np.float32(scale[ch] * sums[ch, 0] / m)
        means[ch, 1] = np.float32(scale[ch] * sums[ch, 1] / m)
    in_place = dx.ctypes.data == dy.ctypes.data
    scaled = dtop == "scaled"
    leave = scaled or (dtop == "masked" and relu_in)
    for b in range(n):
        for ch in range(first, last):
            a, yr, nr = scale[ch], y[b, ch] if relu_in else dy[b, ch], norm[b, ch]
            if dx.size > 0:
                if not in_place:
                    store(dy[b, ch], dx[b, ch])
                _gradient_row(dx[b, ch], yr, slope, keep, a, True, True, means[ch, 1],
                              means[ch, 0], std[0, ch, 0], nr)
            if leave:
                _gradient_row(dy[b, ch], yr, slope, keep, a, scaled, False, means[ch, 1],
                              means[ch, 0], std[0, ch, 0], nr)
