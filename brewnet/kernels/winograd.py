"""Winograd F(2x2, 3x3) transforms for a 3x3, stride-1, pad-1 convolution's forward
(``brewnet.layers.winograd`` holds the rest): each 2x2 block of outputs ("tile") comes from a
4x4 block of the padded bottom, ``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A``, so the convolution becomes
16 GEMMs over channels with 16/36 of the direct form's multiplies.

Layouts: ``v`` and ``m`` are ``(16, C, T)`` and ``(16, M, T)``, tile ``t = (n·TH + ty)·TW +
tx`` of a ``TH x TW`` grid per sample (``TH = ceil(H/2)``); position ``4i + j`` of the 4x4
transform. The loops run over whole rows of tiles so that the compiler vectorizes them.
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
