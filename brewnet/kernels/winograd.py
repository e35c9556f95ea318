"""Winograd transforms for "same" stride-1 convolutions (``brewnet.layers.winograd`` holds the
rest): each 2x2 block of outputs ("tile") comes from an ``a x a`` block of the padded bottom
(``a = r + 1``), ``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A``, so the convolution becomes ``a²``
GEMMs over channels with ``a²/(4r²)`` of the direct form's multiplies.

F(2x2, 3x3) has its own kernels (:func:`input_transform`, :func:`output_transform`), with
``v`` and ``m`` ``(16, C, T)`` and ``(16, M, T)``, tile ``t = (n·TH + ty)·TW + tx`` of a
``TH x TW`` grid per sample (``TH = ceil(H/2)``), position ``4i + j`` of the 4x4 transform;
their loops run over whole rows of tiles. The general kernels (F(2x2, 5x5), and the bottom's
transform of both weight gradients) work channels last, ``(a², T, C)`` and ``(a², T, M)``:
rows of tiles times all channels make loops long enough to vectorize on CIFAR-10's 8x8 and
4x4 tile grids, where a loop over one row of tiles (8 or 4 values) ran at scalar speed. The
weight gradients' transform of the top gradient's tiles is :func:`gradient_transform`.
"""

from __future__ import annotations

import numpy as np

from . import kernel
from .epilogue import relu


@kernel
def input_transform(x, v):  # pragma: no cover - compiled
    """``v[:, c, t] = Bᵀ d B`` for each tile ``t`` of ``x`` ``(N, C, H, W)``,
    ``d`` its 4x4 block at ``(2ty - 1, 2tx - 1)``, zero outside ``x`` (the padding).
    ``Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]``."""
    n, c, h, w = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2
    wp = 2 * tw + 2
    rows = np.zeros((4, wp), dtype=np.float32)  # the block's 4 padded rows, all tiles across
    down = np.empty((4, wp), dtype=np.float32)  # Bᵀ down each column
    zero = np.float32(0)
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                for i in range(4):
                    r = 2 * ty - 1 + i
                    if 0 <= r < h:
                        for q in range(w):
                            rows[i, q + 1] = x[b, ch, r, q]
                    else:
                        for q in range(w):
                            rows[i, q + 1] = zero
                for q in range(wp):
                    d0, d1, d2, d3 = rows[0, q], rows[1, q], rows[2, q], rows[3, q]
                    down[0, q] = d0 - d2
                    down[1, q] = d1 + d2
                    down[2, q] = d2 - d1
                    down[3, q] = d1 - d3
                t0 = (b * th + ty) * tw
                for i in range(4):
                    v0, v1 = v[4 * i, ch], v[4 * i + 1, ch]
                    v2, v3 = v[4 * i + 2, ch], v[4 * i + 3, ch]
                    for tx in range(tw):
                        e0, e1 = down[i, 2 * tx], down[i, 2 * tx + 1]
                        e2, e3 = down[i, 2 * tx + 2], down[i, 2 * tx + 3]
                        v0[t0 + tx] = e0 - e2
                        v1[t0 + tx] = e1 + e2
                        v2[t0 + tx] = e2 - e1
                        v3[t0 + tx] = e1 - e3


@kernel
def output_transform(m, y, a, b, slope):  # pragma: no cover - compiled
    """``y[n, k] = act(Aᵀ m A · a[k] + b[k])`` tile by tile, from ``m[:, k, first_tile + t]``
    (``act`` the ReLU layer's, :func:`brewnet.kernels.epilogue.relu`); a last tile row or
    column past an odd ``H`` or ``W`` is dropped. ``Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]``."""
    n, mo, h, w = y.shape
    th, tw = (h + 1) // 2, (w + 1) // 2
    across = np.empty((2, 4, tw), dtype=np.float32)  # Aᵀ down each column of every tile
    out = np.empty((2, 2 * tw), dtype=np.float32)  # two output rows
    for bi in range(n):
        for k in range(mo):
            ak, bk = a[k], b[k]
            for ty in range(th):
                t0 = (bi * th + ty) * tw
                for j in range(4):
                    s0, s1, s2, s3 = m[j, k], m[4 + j, k], m[8 + j, k], m[12 + j, k]
                    for tx in range(tw):
                        p1, p2 = s1[t0 + tx], s2[t0 + tx]
                        across[0, j, tx] = s0[t0 + tx] + p1 + p2
                        across[1, j, tx] = p1 - p2 - s3[t0 + tx]
                for i in range(2):
                    for tx in range(tw):
                        p1, p2 = across[i, 1, tx], across[i, 2, tx]
                        out[i, 2 * tx] = relu((across[i, 0, tx] + p1 + p2) * ak + bk, slope)
                        out[i, 2 * tx + 1] = relu((p1 - p2 - across[i, 3, tx]) * ak + bk, slope)
                for i in range(2):
                    row = 2 * ty + i
                    if row < h:
                        for q in range(w):
                            y[bi, k, row, q] = out[i, q]


@kernel
def input_transform_general(x, v, taps, coefs, pad):  # pragma: no cover - compiled
    """:func:`input_transform` for F(2x2, r x r), ``r`` odd, into channels-last ``v``
    ``(a², T, C)``: ``v[a·i + j, t, c] = (Bᵀ d B)[i, j]``, ``d`` the tile's ``a x a`` block
    at ``(2ty − pad, 2tx − pad)``, zero outside ``x`` (``a = r + 1``). ``Bᵀ`` is given by
    its nonzero entries, four a row: row ``i`` is ``Σ_u coefs[i, u]·d[taps[i, u]]`` (a row
    with fewer has zero coefficients).

    A sample at a time, channels last, so that every loop runs over whole rows of tiles
    times all channels (CIFAR-10's 5x5 layers have 8 or 4 tiles a row). Tiles start every
    second row and column, so the sample is first dealt into four quarter planes by the
    parity of its padded row and column: column ``l`` of every tile of a row is then one
    contiguous run of a quarter row, shifted by ``l // 2``. Along the rows that gives the
    ``a`` columns of all tiles (``across``); down them, row ``k`` of every tile is a
    contiguous run again, shifted by ``k // 2`` quarter rows, and the rows of ``Bᵀ`` write
    ``v`` directly. Slices are taken before the loops, which then index from 0: numba adds
    no negative-index checks and LLVM vectorizes them."""
    n, c, h, w = x.shape
    a = taps.shape[0]
    half = a // 2
    th, tw = (h + 1) // 2, (w + 1) // 2
    rows, width = th + half - 1, tw + half - 1  # a quarter plane
    tiles = th * tw
    run, flat = tw * c, tiles * c
    # Quarter planes (row parity, column parity, row, column, channel); the padding around
    # the bottom is never written, so it stays 0.
    quarter = np.zeros((2, 2, rows, width * c), dtype=np.float32)
    # Bᵀ along the rows: (row parity, j, quarter row x tile column x channel).
    across = np.empty((2, a, rows * run), dtype=np.float32)
    for b in range(n):
        t0 = b * tiles
        for ch in range(c):
            for r in range(h):
                pr = r + pad
                src = x[b, ch, r]
                for q in range(w):
                    pq = q + pad
                    quarter[pr % 2, pq % 2, pr // 2, (pq // 2) * c + ch] = src[q]
        for parity in range(2):
            for j in range(a):
                c0, c1, c2, c3 = coefs[j, 0], coefs[j, 1], coefs[j, 2], coefs[j, 3]
                l0, l1, l2, l3 = taps[j, 0], taps[j, 1], taps[j, 2], taps[j, 3]
                for r in range(rows):
                    s0 = quarter[parity, l0 % 2, r][(l0 // 2) * c:(l0 // 2) * c + run]
                    s1 = quarter[parity, l1 % 2, r][(l1 // 2) * c:(l1 // 2) * c + run]
                    s2 = quarter[parity, l2 % 2, r][(l2 // 2) * c:(l2 // 2) * c + run]
                    s3 = quarter[parity, l3 % 2, r][(l3 // 2) * c:(l3 // 2) * c + run]
                    out = across[parity, j][r * run:r * run + run]
                    for e in range(run):
                        out[e] = c0 * s0[e] + c1 * s1[e] + c2 * s2[e] + c3 * s3[e]
        for i in range(a):
            c0, c1, c2, c3 = coefs[i, 0], coefs[i, 1], coefs[i, 2], coefs[i, 3]
            k0, k1, k2, k3 = taps[i, 0], taps[i, 1], taps[i, 2], taps[i, 3]
            o0, o1, o2, o3 = (k0 // 2) * run, (k1 // 2) * run, (k2 // 2) * run, (k3 // 2) * run
            for j in range(a):
                s0 = across[k0 % 2, j][o0:o0 + flat]
                s1 = across[k1 % 2, j][o1:o1 + flat]
                s2 = across[k2 % 2, j][o2:o2 + flat]
                s3 = across[k3 % 2, j][o3:o3 + flat]
                out = v[a * i + j].reshape(-1)[t0 * c:t0 * c + flat]
                for e in range(flat):
                    out[e] = c0 * s0[e] + c1 * s1[e] + c2 * s2[e] + c3 * s3[e]


@kernel
def output_transform_general(m, y, at, a, b, slope):  # pragma: no cover - compiled
    """:func:`output_transform` for F(2x2, r x r) from channels-last ``m`` ``(a², T, M)``,
    ``Aᵀ`` the ``2 x a`` matrix ``at``: a sample at a time, every loop over all its tiles
    times all channels, then the 2x2 outputs of each tile dealt to ``y``'s planes."""
    n, mo, h, w = y.shape
    size = at.shape[1]
    th, tw = (h + 1) // 2, (w + 1) // 2
    tiles = th * tw
    flat = tiles * mo
    across = np.empty((2, size, flat), dtype=np.float32)  # Aᵀ down each tile column
    out = np.empty((2, 2, tiles, mo), dtype=np.float32)  # output row, column, tile, channel
    zero = np.float32(0)
    for bi in range(n):
        t0 = bi * tiles
        for i in range(2):
            for j in range(size):
                acc = across[i, j]
                for e in range(flat):
                    acc[e] = zero
                for p in range(size):
                    coef = at[i, p]
                    if coef != zero:
                        src = m[size * p + j].reshape(-1)[t0 * mo:t0 * mo + flat]
                        for e in range(flat):
                            acc[e] += coef * src[e]
        for i in range(2):
            for jj in range(2):
                o = out[i, jj].reshape(-1)
                for e in range(flat):
                    o[e] = zero
                for p in range(size):
                    coef = at[jj, p]
                    if coef != zero:
                        src = across[i, p]
                        for e in range(flat):
                            o[e] += coef * src[e]
                for t in range(tiles):
                    row = out[i, jj, t]
                    for k in range(mo):
                        row[k] = relu(row[k] * a[k] + b[k], slope)
        for k in range(mo):
            for ty in range(th):
                for i in range(2):
                    r = 2 * ty + i
                    if r < h:
                        dst = y[bi, k, r]
                        for q in range(w):
                            dst[q] = out[i, q % 2, ty * tw + q // 2, k]


@kernel
def gradient_transform(dy, gh, g):  # pragma: no cover - compiled
    """The top gradient's 2x2 tiles transformed for F(r x r, 2x2) weight gradients:
    ``gh[a·i + j, ch, t] = (G' d G'ᵀ)[i, j]``, ``d`` the 2x2 block of ``dy`` ``(N, M, H,
    W)`` at ``(2ty, 2tx)`` (zero past an odd edge), ``G'`` the ``a x 2`` matrix ``g``. A
    plane at a time: dealt into its four quarter planes (one value of every tile each), then
    ``G'`` down and across the tiles in loops over all of them. It replaces a GEMM of inner
    dimension 4 that took as long as the products it fed."""
    n, mo, h, w = dy.shape
    size = g.shape[0]
    th, tw = (h + 1) // 2, (w + 1) // 2
    tiles = th * tw
    quarter = np.zeros((2, 2, tiles), dtype=np.float32)  # the never-written edge stays 0
    down = np.empty((2, tiles), dtype=np.float32)  # G' down a tile column, for row i
    for bi in range(n):
        t0 = bi * tiles
        for ch in range(mo):
            plane = dy[bi, ch]
            for r in range(h):
                src = plane[r]
                dst0 = quarter[r % 2, 0][(r // 2) * tw:(r // 2) * tw + tw]
                dst1 = quarter[r % 2, 1][(r // 2) * tw:(r // 2) * tw + tw]
                for q in range(w // 2):
                    dst0[q] = src[2 * q]
                    dst1[q] = src[2 * q + 1]
                if w % 2:
                    dst0[w // 2] = src[w - 1]
            for i in range(size):
                g0, g1 = g[i, 0], g[i, 1]
                for col in range(2):
                    top, bottom, acc = quarter[0, col], quarter[1, col], down[col]
                    for e in range(tiles):
                        acc[e] = g0 * top[e] + g1 * bottom[e]
                left, right = down[0], down[1]
                for j in range(size):
                    c0, c1 = g[j, 0], g[j, 1]
                    out = gh[size * i + j, ch][t0:t0 + tiles]
                    for e in range(tiles):
                        out[e] = c0 * left[e] + c1 * right[e]
