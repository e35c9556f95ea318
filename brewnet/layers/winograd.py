"""A 3x3, stride-1, pad-1 convolution's forward by Winograd's F(2x2, 3x3) (Lavin & Gray,
2015), for inference: the transformed weights ``U = G g Gᵀ`` (16, G, M/G, C/G), the
transformed bottom ``V`` (16, C, T) of T 2x2 output tiles, 16 GEMMs ``U @ V`` per group over
its channels (16 products a tile where the direct form has 36), and the output transform with
the convolution's per-channel epilogue (``brewnet.layers.epilogue``) in the same pass; each
core takes its own samples (``brewnet.cores``). ResNet-50's 3x3 layers at batch 16 take 0.6x
the time of the patch-row GEMMs.

Results differ from the direct sum by rounding only (the transforms add and subtract inputs
before the products; relative differences of about 1e-6). The transforms are compiled
(``brewnet.kernels.winograd``); without the kernels the convolution keeps its im2col path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores
from .scratch import scratch

# G ⊗ G: the weight transform G g Gᵀ of every filter as one GEMM over the 9 taps.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float32)
_GG = np.kron(_G, _G)  # (16, 9): row 4i + j, column 3r + s
# Samples per chunk: V and the GEMM output stay within about this many bytes each.
_CHUNK_BYTES = 16 << 20
# Below 4 samples, the tiles and channels a forward needs for the GEMMs to repay the
# transforms.
MIN_TILES = 196
MIN_CHANNELS = 64


def applies(n: int, h: int, w: int, group_channels: int, kernel: tuple, stride: tuple,
            pad: tuple, dilation: tuple) -> bool:
    """Whether the Winograd forward serves this convolution of ``n`` ``h x w`` planes with
    ``group_channels`` input channels a group: 3x3, stride 1, pad 1, no dilation, and at
    least 4 samples, or ``MIN_TILES`` tiles over ``MIN_CHANNELS`` channels (with fewer, the
    weight transform made at every forward and the serial bottom and top transforms cost
    more than the GEMMs save: ResNet-50's 14x14 and 7x7 layers and SqueezeNet's at batch 1,
    the latter at 2 threads)."""
    tiles = n * ((h + 1) // 2) * ((w + 1) // 2)
    return ((kernel, stride, pad, dilation) == ((3, 3), (1, 1), (1, 1), (1, 1))
            and (n >= 4 or (tiles >= MIN_TILES and group_channels >= MIN_CHANNELS)))


def forward_affine(xp: Any, x: Any, weight: Any, group: int, y: Any, a: Any, b: Any,
                   slope: np.float32) -> None:
    """``y = act((weight * x)·a + b)`` per channel, ``group`` groups: ``x`` ``(N, C, H, W)``,
    ``weight`` ``(M, C/G, 3, 3)``, ``y`` ``(N, M, H, W)``, ``a``, ``b`` ``(M,)``."""
    from ..kernels.winograd import input_transform, output_transform

    n, c, h, w = x.shape
    m, g = weight.shape[0], group
    tiles = ((h + 1) // 2) * ((w + 1) // 2)
    u = scratch(xp, "winograd.u", (16, g, m // g, c // g))
    xp.matmul(_GG, weight.reshape(-1, 9).T, out=u.reshape(16, -1))
    chunk = max(1, min(n, _CHUNK_BYTES // (16 * max(c, m) * tiles * 4)))

    def transform(first: int, last: int) -> None:
        for start in range(first, last, chunk):
            q = min(last, start + chunk) - start
            v = scratch(xp, "winograd.v", (16, c, q * tiles))
            out = scratch(xp, "winograd.m", (16, m, q * tiles))
            input_transform(x[start:start + q], v)
            xp.matmul(u, v.reshape(16, g, c // g, -1), out=out.reshape(16, g, m // g, -1))
            output_transform(out, y[start:start + q], a, b, slope)

    cores.split(xp, n, transform)
