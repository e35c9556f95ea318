"""MAX and AVE pooling windows ``(P, H, W)`` -> ``(P, OH, OW)``, compiled per kernel, stride
and padding.

The kernels work on the frame the NumPy body (``brewnet.layers.pooling``) works on: the
bottom padded by ``(ph, pw)`` with -inf (MAX) or 0 (AVE) and cut to the windows' span, every
window at ``(o_h * stride_h, o_w * stride_w)`` inside it. Where the NumPy body pads the whole
bottom into a copy (and backward routes into a whole padded gradient, then copies it out),
the kernels pad one plane at a time in a plane-sized buffer that stays in cache; with no
padding and every window inside the bottom they read and write the planes directly. So the
results are the NumPy body's: MAX keeps the first maximum in row-major window order (strict
``>``, as Caffe) and records its offset ``i * kw + j``; AVE adds in the same order and
divides by the same divisor. One difference: a NaN never wins a MAX window here (Caffe's
rule), where the NumPy body's maximum propagates it.

Each kernel is a closure over the kernel, stride and padding, so its window loops have
constant trip counts and unroll into straight, branch-free code; that is what beats the
NumPy passes.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import kernel


@cache
def max_forward_kernel(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, direct: bool):
    """``forward(x, y, argmax)`` for this geometry over the bottom planes ``x``; ``direct``:
    no padding and every window inside ``x``, which is then read as it is."""

    @kernel
    def forward(x, y, argmax):  # pragma: no cover - compiled
        planes, oh, ow = y.shape
        span_h, span_w, rows, cols = _frame_extent(y, x, kh, kw, sh, sw, ph, pw)
        frame = np.full((span_h, span_w), -np.inf, dtype=np.float32)
        for p in range(planes):
            if direct:
                source = x[p]
            else:  # the border stays -inf: only the interior is ever written
                _pad(x[p], frame, ph, pw, rows, cols)
                source = frame
            for r in range(oh):
                for c in range(ow):
                    best = np.float32(-np.inf)
                    arg = 0
                    # Constant trip counts (closure values) unroll; the select on ``better``
                    # stays branch-free, which matters as a window's winner is unpredictable.
                    for i in range(kh):
                        for j in range(kw):
                            v = source[r * sh + i, c * sw + j]
                            better = v > best
                            arg += better * (i * kw + j - arg)
                            best = v if better else best
                    y[p, r, c] = best
                    argmax[p, r, c] = arg

    return forward


# max_value_kernel runs a stride-1 padded plane whose output rows are narrower than this as
# whole-plane runs (rows as wide as the frame, the extra columns dropped when stored): row by
# row, GoogLeNet's 14- and 7-wide inception pools took 1.1 and 1.9 ns an output.
FLAT_BELOW = 32
# Those runs are computed to a multiple of this many values: LLVM vectorizes a loop 64 values
# at a time here and leaves the rest scalar.
RUN_MULTIPLE = 64


@cache
def max_value_kernel(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, direct: bool):
    """``forward(x, y)``: ``max_forward_kernel``'s values without the argmax, for a forward
    no backward follows. Separable: for each output row the maxima down the window's rows,
    every frame column at once (contiguous, vectorized), then across each window's columns;
    a narrow stride-1 padded plane as one run down the whole frame, then one across
    (``FLAT_BELOW``). NaN never wins, as there. Equal values are the same value except a
    zero maximum with -0.0 and 0.0 both in its window, whose sign may differ from the
    row-major rule's (never after a ReLU, which writes 0.0)."""
    flat_geometry = sh == 1 and sw == 1 and not direct

    @kernel
    def forward(x, y):  # pragma: no cover - compiled
        planes, oh, ow = y.shape
        span_h, span_w, rows, cols = _frame_extent(y, x, kh, kw, sh, sw, ph, pw)
        flat = flat_geometry and ow < FLAT_BELOW
        run = (oh * span_w + RUN_MULTIPLE - 1) // RUN_MULTIPLE * RUN_MULTIPLE if flat else 0
        # -inf rows below the frame for the last run's reach.
        slack = (RUN_MULTIPLE + kw + span_w - 1) // span_w if flat else 0
        frame = np.full((span_h + slack, span_w), -np.inf, dtype=np.float32)
        down = np.empty(max(span_w, run + kw - 1), dtype=np.float32)
        across = np.empty(run, dtype=np.float32)
        for p in range(planes):
            if direct:
                source = x[p]
            else:  # the border stays -inf: only the interior is ever written
                _pad(x[p], frame, ph, pw, rows, cols)
                source = frame
            if flat:
                cells = frame.reshape(-1)
                # Unsigned offsets: an index numba might have to wrap is not vectorized.
                for k in range(run + kw - 1):
                    best = np.float32(-np.inf)
                    for i in range(kh):
                        v = cells[np.uint64(k) + np.uint64(i * span_w)]
                        best = v if v > best else best
                    down[k] = best
                for k in range(run):
                    best = np.float32(-np.inf)
                    for j in range(kw):
                        v = down[k + j]
                        best = v if v > best else best
                    across[k] = best
                for r in range(oh):
                    for c in range(ow):
                        y[p, r, c] = across[r * span_w + c]
                continue
            for r in range(oh):
                top = r * sh
                for q in range(span_w):
                    best = np.float32(-np.inf)
                    for i in range(kh):
                        v = source[top + i, q]
                        best = v if v > best else best
                    down[q] = best
                for c in range(ow):
                    best = np.float32(-np.inf)
                    for j in range(kw):
                        v = down[c * sw + j]
                        best = v if v > best else best
                    y[p, r, c] = best

    return forward


@cache
def ave_forward_kernel(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, direct: bool):
    """``forward(x, y, divisor)``: window sums over ``x`` padded with zeros, divided by
    ``divisor`` ``(OH, OW)``; ``direct`` as for MAX."""

    @kernel
    def forward(x, y, divisor):  # pragma: no cover - compiled
        planes, oh, ow = y.shape
        span_h, span_w, rows, cols = _frame_extent(y, x, kh, kw, sh, sw, ph, pw)
        frame = np.zeros((span_h, span_w), dtype=np.float32)
        for p in range(planes):
            if direct:
                source = x[p]
            else:
                _pad(x[p], frame, ph, pw, rows, cols)
                source = frame
            for r in range(oh):
                for c in range(ow):
                    total = np.float32(0)
                    for i in range(kh):
                        for j in range(kw):
                            total += source[r * sh + i, c * sw + j]
                    y[p, r, c] = total / divisor[r, c]

    return forward


@cache
def max_backward_kernel(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, direct: bool,
                        tiles: bool):
    """``backward(dy, argmax, dx)``: each top diff to its window's argmax, ``dx`` (the bottom
    diff planes) overwritten. ``tiles``: the windows are disjoint and cover the bottom, so
    every cell is written once and no zeroing is needed."""
    by_offset = sw == 1 and not tiles

    @kernel
    def backward(dy, argmax, dx):  # pragma: no cover - compiled
        planes, oh, ow = dy.shape
        span_h, span_w, rows, cols = _frame_extent(dy, dx, kh, kw, sh, sw, ph, pw)
        frame = np.empty((span_h, span_w), dtype=np.float32)
        for p in range(planes):
            grad = dx[p] if direct else frame
            if not tiles:
                grad[...] = 0  # one plane, then routed into while it is in cache
            if by_offset:
                # Offset by offset, as the NumPy body adds: within one offset no two windows
                # share a cell, so with stride 1 the row loop is a vectorized add.
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        for r in range(oh):
                            for c in range(ow):
                                grad[r * sh + i, c + j] += (
                                    dy[p, r, c] * np.float32(argmax[p, r, c] == k))
            else:
                for r in range(oh):
                    for i in range(kh):  # one gradient row at a time, in memory order
                        for c in range(ow):
                            d = dy[p, r, c]
                            a = argmax[p, r, c]
                            for j in range(kw):
                                # A multiply by the hit, as the NumPy body: branch-free.
                                routed = d * np.float32(a == i * kw + j)
                                if tiles:
                                    grad[r * sh + i, c * sw + j] = routed
                                else:
                                    grad[r * sh + i, c * sw + j] += routed
            if not direct:
                _unpad(frame, dx[p], ph, pw, rows, cols)

    return backward


@cache
def ave_backward_kernel(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, direct: bool,
                        tiles: bool):
    """``backward(dy, divisor, dx)``: ``dy / divisor`` to every cell of each window, ``dx``
    overwritten; ``direct`` and ``tiles`` as for MAX."""

    @kernel
    def backward(dy, divisor, dx):  # pragma: no cover - compiled
        planes, oh, ow = dy.shape
        span_h, span_w, rows, cols = _frame_extent(dy, dx, kh, kw, sh, sw, ph, pw)
        frame = np.empty((span_h, span_w), dtype=np.float32)
        for p in range(planes):
            grad = dx[p] if direct else frame
            if not tiles:
                grad[...] = 0
            for r in range(oh):
                for c in range(ow):
                    share = dy[p, r, c] / divisor[r, c]
                    for i in range(kh):
                        for j in range(kw):
                            if tiles:
                                grad[r * sh + i, c * sw + j] = share
                            else:
                                grad[r * sh + i, c * sw + j] += share
            if not direct:
                _unpad(frame, dx[p], ph, pw, rows, cols)

    return backward


@kernel
def _frame_extent(windows, bottom, kh, kw, sh, sw, ph, pw):  # pragma: no cover - compiled
    """``(span_h, span_w, rows, cols)`` for window planes ``(P, OH, OW)`` over bottom planes
    ``(P, H, W)``: the frame the windows span, and how many of the bottom's rows and columns
    lie inside it (FLOOR rounding may leave the last ones out)."""
    oh, ow = windows.shape[1], windows.shape[2]
    span_h, span_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    return (span_h, span_w, min(bottom.shape[1], span_h - ph),
            min(bottom.shape[2], span_w - pw))


@kernel
def _pad(plane, frame, ph, pw, rows, cols):  # pragma: no cover - compiled
    """A bottom plane's first ``rows`` x ``cols`` cells into the interior of its padded
    ``frame``, whose border the caller filled once."""
    for r in range(rows):
        for c in range(cols):
            frame[ph + r, pw + c] = plane[r, c]


@kernel
def _unpad(frame, out, ph, pw, rows, cols):  # pragma: no cover - compiled
    """A padded gradient plane's interior into the bottom's plane ``out``; the cells no
    window reaches (FLOOR rounding leaves rows and columns out) get 0."""
    h, w = out.shape
    for r in range(h):
        for c in range(w):
            out[r, c] = frame[ph + r, pw + c] if r < rows and c < cols else np.float32(0)
