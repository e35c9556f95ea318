"""Depthwise convolution (one filter per channel, ``group == channels == num_output``) as
shifted multiply-adds, compiled per kernel geometry (kernel, stride, dilation) so the window
loops have constant trip counts and unroll; ``brewnet.layers.depthwise`` holds the NumPy
bodies they mirror. Planes are ``(N, C, ...)``; ``xpad`` is the padded bottom (or its
gradient), windows at ``(y * sh + i * dh, x * sw + j * dw)`` lie inside it.

Forward and the bottom gradient add each cell's products in the NumPy bodies' order, one
rounded product at a time, so they are bit-identical to them (the gathered bottom gradients
also add ``w * 0`` where an offset's window misses a cell, which changes no sum of finite
values); the weight gradient sums in another order (within float32 rounding of the NumPy
sum). Each call covers the channels ``first:last``: a layer gives each core its own channels
(``brewnet.cores``), which changes no value.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import kernel
from .epilogue import relu


@cache
def forward_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int):
    """``forward(xpad, w, out, first, last)``: ``out[n, c] = sum over (i, j) of w[c, i, j] *
    xpad[n, c, window(i, j)]``, each output summed over its window in registers."""

    @kernel
    def forward(xpad, w, out, first, last):  # pragma: no cover - compiled
        n, c, oh, ow = out.shape
        for b in range(n):
            for ch in range(first, last):
                for y in range(oh):
                    for x in range(ow):
                        acc = np.float32(0)
                        for i in range(kh):
                            for j in range(kw):
                                acc += w[ch, i, j] * xpad[b, ch, y * sh + i * dh, x * sw + j * dw]
                        out[b, ch, y, x] = acc
    return forward


# Planes whose output rows are narrower than this run forward_affine's sums down the whole
# plane as one run (rows as wide as the padded plane, the extra columns dropped when
# stored): row by row, MobileNet v2's 7- and 14-wide planes ran at 3-4 GB/s.
FLAT_BELOW = 32


@cache
def forward_affine_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, ph: int,
                          pw: int):
    """``forward_affine(x, w, a, b, slope, out, first, last)``: ``forward``'s sum over the
    bottom ``x`` ``(N, C, H, W)`` padded by ``ph``/``pw``, then the epilogue
    ``act(sum * a[c] + b[c])`` (``brewnet.kernels.epilogue``) before the one store. Each plane
    is padded into a buffer that stays in cache (no padded copy of the bottom goes to
    memory), split by column phase (columns ``p, p + sw, ...``), so a window's taps read
    contiguous runs at a stride too (stride 2 read every other float). Each sum adds its
    window's products in ``forward``'s order."""

    @kernel
    def forward_affine(x, w, a, b, slope, out, first, last):  # pragma: no cover - compiled
        n, c, oh, ow = out.shape
        h, wd = x.shape[2], x.shape[3]
        wq = (wd + 2 * pw + sw - 1) // sw
        # One row of slack: a flat run's last window reaches past the plane's last row.
        phases = np.zeros((sw, h + 2 * ph + 1, wq), dtype=np.float32)
        flat = sh == 1 and sw == 1 and ow < FLAT_BELOW
        ext = np.empty(oh * wq if flat else 0, dtype=np.float32)
        pairs = wd // 2 if sw == 2 else 0
        for bi in range(n):
            for ch in range(first, last):
                for r in range(h):
                    src = x[bi, ch, r]
                    if sw == 2:
                        # Both phases in one loop over column pairs: this copy took 9.3 ms
                        # of MobileNet v2's 112x112 planes at batch 16 with a modulo and a
                        # division per value, 7.0 so (a loop per phase, twice as long).
                        even = phases[pw % 2, ph + r][pw // 2:pw // 2 + pairs]
                        odd = phases[(pw + 1) % 2, ph + r][(pw + 1) // 2:(pw + 1) // 2 + pairs]
                        for k in range(pairs):
                            even[k] = src[2 * k]
                            odd[k] = src[2 * k + 1]
                    for q in range(2 * pairs, wd):
                        phases[(pw + q) % sw, ph + r, (pw + q) // sw] = src[q]
                ac, bc = a[ch], b[ch]
                if flat:
                    # Unsigned offsets: an index numba might have to wrap is not vectorized.
                    src = phases[0].reshape(-1)
                    for k in range(oh * wq):
                        acc = np.float32(0)
                        for i in range(kh):
                            for j in range(kw):
                                tap = np.uint64(k) + np.uint64(i * dh * wq + j * dw)
                                acc += w[ch, i, j] * src[tap]
                        ext[k] = acc
                    for y in range(oh):
                        for xo in range(ow):
                            out[bi, ch, y, xo] = relu(ext[y * wq + xo] * ac + bc, slope)
                    continue
                for y in range(oh):
                    for xo in range(ow):
                        acc = np.float32(0)
                        for i in range(kh):
                            for j in range(kw):
                                acc += w[ch, i, j] * phases[(j * dw) % sw, y * sh + i * dh,
                                                            xo + (j * dw) // sw]
                        out[bi, ch, y, xo] = relu(acc * ac + bc, slope)
    return forward_affine


@cache
def backward_data_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int):
    """``backward_data(dy, w, dxpad, first, last)``: ``dxpad[n, c, window(i, j)] += w[c, i, j]
    * dy[n, c]``
    for every offset in order, from zero. At stride 1 each cell of ``dxpad`` is summed in
    registers over the offsets whose window covers it, in that order, from the top gradient
    padded plane by plane in cache (the forward's loop shape: a gather, one store a cell);
    the offsets that miss it add ``w * 0``, which changes no sum of finite values. At a
    stride, gathered column phase by column phase (:func:`_strided_backward_data_kernel`)."""
    if (sh, sw) == (1, 1):
        return _gathered_backward_data_kernel(kh, kw, dh, dw)
    return _strided_backward_data_kernel(kh, kw, sh, sw, dh, dw)


def _strided_backward_data_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int):
    """A stride: a row of ``dxpad`` is gathered column phase by column phase (columns ``p,
    p + sw, ...``, which the same offsets reach), each phase's cells summed offset by offset
    in a row buffer over contiguous runs of the top gradient's row, then interleaved into
    the plane; rows and phases no offset reaches stay 0."""
    lpad = ((kw - 1) * dw + sw - 1) // sw  # the top gradient's left padding, in columns

    @kernel
    def backward_data(dy, w, dxpad, first, last):  # pragma: no cover - compiled
        n, c, oh, ow = dy.shape
        hp, wp = dxpad.shape[2], dxpad.shape[3]
        wq = (wp + sw - 1) // sw
        dyp = np.zeros((oh, lpad + ow + wq + 1), dtype=np.float32)  # borders stay 0
        rows = np.empty((sw, wq), dtype=np.float32)
        for b in range(n):
            for ch in range(first, last):
                for y in range(oh):
                    for x in range(ow):
                        dyp[y, lpad + x] = dy[b, ch, y, x]
                for r in range(hp):
                    rows[:, :] = 0
                    for i in range(kh):
                        yy = r - i * dh
                        if yy < 0 or yy % sh != 0 or yy // sh >= oh:
                            continue
                        src = dyp[yy // sh]
                        for p in range(sw):
                            dst = rows[p]
                            for j in range(kw):
                                xx = p - j * dw
                                if xx % sw != 0:
                                    continue
                                # Unsigned: an index numba might have to wrap is not
                                # vectorized.
                                start = np.uint64(lpad + xx // sw)
                                wij = w[ch, i, j]
                                for t in range(wq):
                                    dst[t] += wij * src[start + np.uint64(t)]
                    for q in range(wp):
                        dxpad[b, ch, r, q] = rows[q % sw, q // sw]
    return backward_data


def _gathered_backward_data_kernel(kh: int, kw: int, dh: int, dw: int):
    """Stride 1: each cell of ``dxpad`` summed in registers (``backward_data_kernel``)."""
    eh, ew = (kh - 1) * dh, (kw - 1) * dw  # the top gradient's padding

    @kernel
    def backward_data(dy, w, dxpad, first, last):  # pragma: no cover - compiled
        n, c, oh, ow = dy.shape
        hp, wp = dxpad.shape[2], dxpad.shape[3]
        dyp = np.zeros((oh + 2 * eh, ow + 2 * ew), dtype=np.float32)  # borders stay 0
        for b in range(n):
            for ch in range(first, last):
                for y in range(oh):
                    for x in range(ow):
                        dyp[eh + y, ew + x] = dy[b, ch, y, x]
                plane = dxpad[b, ch]
                for r in range(hp):
                    for q in range(wp):
                        acc = np.float32(0)
                        for i in range(kh):
                            for j in range(kw):
                                acc += w[ch, i, j] * dyp[r + eh - i * dh, q + ew - j * dw]
                        plane[r, q] = acc
    return backward_data


@cache
def weight_grad_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int):
    """``weight_grad(dy, xpad, dw_out, first, last)``: ``dw_out[c, i, j] += sum over (n, y, x) of
    dy[n, c, y, x] * xpad[n, c, window(i, j)]``; partial sums per output column (a vector the
    compiler keeps in registers), then their sum. At a column stride each bottom plane is
    first split by column phase in cache (columns ``p, p + sw, ...``), so every offset reads
    a contiguous run instead of every other float; the sums are the same."""

    @kernel
    def weight_grad(dy, xpad, dw_out, first, last):  # pragma: no cover - compiled
        n, c, oh, ow = dy.shape
        hp, wp = xpad.shape[2], xpad.shape[3]
        wq = (wp + sw - 1) // sw
        phases = np.zeros((sw, hp, wq) if sw > 1 else (1, 1, 1), dtype=np.float32)
        acc = np.empty((kh, kw, ow), dtype=np.float32)
        for ch in range(first, last):
            acc[:] = 0
            for b in range(n):
                if sw > 1:
                    for r in range(hp):
                        for q in range(wp):
                            phases[q % sw, r, q // sw] = xpad[b, ch, r, q]
                for y in range(oh):
                    for i in range(kh):
                        for j in range(kw):
                            row = y * sh + i * dh
                            if sw > 1:
                                p, shift = (j * dw) % sw, (j * dw) // sw
                                for x in range(ow):
                                    acc[i, j, x] += dy[b, ch, y, x] * phases[p, row, x + shift]
                            else:
                                for x in range(ow):
                                    acc[i, j, x] += dy[b, ch, y, x] * xpad[b, ch, row, x + j * dw]
            for i in range(kh):
                for j in range(kw):
                    dw_out[ch, i, j] += acc[i, j].sum()
    return weight_grad
