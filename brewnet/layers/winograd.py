"""A 3x3 (pad 1) or 5x5 (pad 2), stride-1 convolution by Winograd's F(2x2, 3x3) or F(2x2,
5x5) (Lavin & Gray, 2015): the transformed weights ``U = G g Gᵀ`` (a², G, M/G, C/G), the
transformed bottom ``V`` (a², C, T) of T 2x2 output tiles (``a = r + 1``: 4 or 6), a² GEMMs
``U @ V`` per group over its channels (16 products a tile where the direct 3x3 form has 36,
36 where the 5x5 has 100), and the output transform with the convolution's per-channel
epilogue (``brewnet.layers.epilogue``) in the same pass; each core takes its own samples
(``brewnet.cores``). It serves inference (ResNet-50's 3x3 layers at batch 16 take 0.6x the
time of the patch-row GEMMs) and, for batches of 4 or more, training: the forward, the
bottom gradient (the convolution of the top's gradient with the flipped kernels) and the
weight gradient (:func:`weight_grad`, F(r x r, 2x2)) of CIFAR-10's 5x5 and ResNet's 3x3
layers. The 5x5 transforms, and the weight gradients', work channels last: ``V`` is then
``(a², T, C)``.

Results differ from the direct sum by rounding only: the transforms add and subtract inputs
before the products, with relative differences of about 1e-6 for 3x3 and 1e-5 (of a tile's
largest output) for 5x5, whose transform has entries up to 5 and 1/24 (points 0, ±1, ±2).
The transforms are compiled (``brewnet.kernels.winograd``); without the kernels the
convolution keeps its im2col path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import batched, cores
from .scratch import scratch

# G ⊗ G: the weight transform G g Gᵀ of every filter as one GEMM over the 9 taps.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float32)
_GG = np.kron(_G, _G)  # (16, 9): row 4i + j, column 3r + s
# F(2x2, 5x5) from the points 0, 1, -1, 2, -2 and infinity: Aᵀ (2x6), G (6x5), Bᵀ (6x6);
# of the usual point sets, this one rounds least in float32 (measured: 1.0e-5 of a tile's
# largest output against 1.1e-5 for 0, ±1, ±1/2).
_AT5 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]], dtype=np.float32)
_G5 = np.array([[6, 0, 0, 0, 0], [-4, -4, -4, -4, -4], [-4, 4, -4, 4, -4],
                [1, 2, 4, 8, 16], [1, -2, 4, -8, 16], [0, 0, 0, 0, 24]], dtype=np.float64) / 24
_BT5 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                dtype=np.float32)
_GG5 = np.kron(_G5, _G5)  # (36, 25), float64: U rounds once
_BT3 = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float32)
# The weight gradient, dW = Σ over 2x2 tiles of the bottom's (r+1)x(r+1) block correlated
# with the tile's top gradient, is F(r x r, 2x2) over the same points: the same Bᵀ (so the
# bottom's transform is the forward's), G' (a x 2) for the gradient's tiles and A'ᵀ (r x a)
# back to the taps. (Toom-Cook's construction; checked against the im2col gradient in
# tests/layers/test_winograd.py.)
_GW3 = np.array([[1, 0], [0.5, 0.5], [0.5, -0.5], [0, -1]], dtype=np.float64)
_AW3 = np.array([[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]], dtype=np.float64)
_GW5 = np.array([[6, 0], [-4, -4], [-4, 4], [1, 2], [1, -2], [0, 24]], dtype=np.float64) / 24
_AW5 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 0], [0, 1, 1, 16, 16, 1]], dtype=np.float64)
_WEIGHT_GRAD = {3: (_GW3.astype(np.float32), np.kron(_AW3, _AW3).astype(np.float32)),
                5: (_GW5.astype(np.float32), np.kron(_AW5, _AW5).astype(np.float32))}


def _nonzeros(bt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bᵀ's nonzero entries, four a row (the general transform kernel's form): positions and
    values, a row with fewer padded with zero values."""
    counts = np.count_nonzero(bt, axis=1)
    taps = np.array([np.flatnonzero(row).tolist() + [0] * (4 - k)
                     for row, k in zip(bt, counts, strict=True)], dtype=np.int64)
    return taps, np.take_along_axis(bt, taps, axis=1) * (np.arange(4) < counts[:, None])


_NONZEROS = {3: _nonzeros(_BT3), 5: _nonzeros(_BT5)}
# Samples per chunk: V and the GEMM output stay within about this many bytes each, so that
# the GEMMs read what the input transform just wrote from cache (3x3 layers of ResNet-50 at
# batch 8, 1 thread, against 16 MB: 56x56 17.3 -> 13.8 ms, 28x28 14.5 -> 13.6; 5x5 layers
# of CIFAR-10 at batch 100: conv2 16.5 ms with 12 MB, 11.2 with 3 MB).
_CHUNK_BYTES = 4 << 20
_CHUNK_BYTES_5 = 3 << 20
# The weight gradient's chunks, for V and the transformed gradient each: CIFAR-10 quick's
# two 5x5 weight gradients at batch 100 took 18.6 ms with 4 MB, 16.4 with 2 MB (1 thread;
# 11.3 and 9.2 on two).
_CHUNK_BYTES_GRAD = 2 << 20
# Below 4 samples, the tiles and channels a forward needs for the GEMMs to repay the
# transforms: 196 tiles (28x28) over 64 channels, or 49 (13x13, 14x14) over 128. ResNet-50 at
# batch 1 with its 14x14 layers in: 2 threads 85.7 -> 77.7 ms, 1 thread unchanged; CaffeNet
# (13x13) 2 threads 18.7 -> 17.8 ms; SqueezeNet's 13x13 layers of 64 channels lost 2-3%.
MIN_TILES = 196
MIN_CHANNELS = 64
FEW_TILES = 49
FEW_TILES_CHANNELS = 128
# A 5x5 layer's GEMMs over fewer input channels a group run too thin to repay the transforms
# (CIFAR-10's first layer has 3).
MIN_CHANNELS_5 = 16
ENV = "BREWNET_WINOGRAD"


def applies(n: int, h: int, w: int, group_channels: int, kernel: tuple, stride: tuple,
            pad: tuple, dilation: tuple) -> bool:
    """Whether the Winograd forward serves this convolution of ``n`` ``h x w`` planes with
    ``group_channels`` input channels a group: stride 1, no dilation, and 3x3 with pad 1 for
    at least 4 samples, or ``MIN_TILES`` tiles over ``MIN_CHANNELS`` channels, or
    ``FEW_TILES`` over ``FEW_TILES_CHANNELS`` (with fewer, the weight transform made at every
    forward and the serial bottom and top transforms cost more than the GEMMs save:
    ResNet-50's 7x7 layers and SqueezeNet's 13x13 ones at batch 1); or 5x5 with pad 2 for at
    least 4 samples of ``MIN_CHANNELS_5`` channels. ``BREWNET_WINOGRAD=0`` turns it off (the
    im2col GEMMs, whose sums round as Caffe's do)."""
    if stride != (1, 1) or dilation != (1, 1) or os.environ.get(ENV, "1").strip() == "0":
        return False
    tiles = n * ((h + 1) // 2) * ((w + 1) // 2)
    if (kernel, pad) == ((3, 3), (1, 1)):
        return (n >= 4 or (tiles >= MIN_TILES and group_channels >= MIN_CHANNELS)
                or (tiles >= FEW_TILES and group_channels >= FEW_TILES_CHANNELS))
    return (kernel, pad) == ((5, 5), (2, 2)) and n >= 4 and group_channels >= MIN_CHANNELS_5


def forward_affine(xp: Any, x: Any, weight: Any, group: int, y: Any, a: Any, b: Any,
                   slope: np.float32) -> None:
    """``y = act((weight * x)·a + b)`` per channel, ``group`` groups: ``x`` ``(N, C, H, W)``,
    ``weight`` ``(M, C/G, r, r)`` (r 3 or 5), ``y`` ``(N, M, H, W)``, ``a``, ``b``
    ``(M,)``."""
    from ..kernels import winograd as kernels

    n, c, h, w = x.shape
    m, g, r = weight.shape[0], group, weight.shape[-1]
    tiles = ((h + 1) // 2) * ((w + 1) // 2)
    size = (r + 1) ** 2
    u = scratch(xp, "winograd.u", (size, g, m // g, c // g))
    if r == 3:
        # As large a pass as the weights (17 MB out for 512x512 filters): each core
        # transforms its own filters.
        taps, flat, per = weight.reshape(-1, 9), u.reshape(16, -1), c // g
        cores.split(xp, m, lambda lo, hi: xp.matmul(
            _GG, taps[lo * per:hi * per].T, out=flat[:, lo * per:hi * per]))
        budget = _CHUNK_BYTES
    else:
        u.reshape(size, -1)[...] = _GG5 @ weight.reshape(-1, 25).T.astype(np.float64)
        budget = _CHUNK_BYTES_5
    chunk = max(1, min(n, budget // (size * max(c, m) * tiles * 4)))

    def transform(first: int, last: int) -> None:
        for start in range(first, last, chunk):
            q = min(last, start + chunk) - start
            if r == 3:
                v = scratch(xp, "winograd.v", (size, c, q * tiles))
                out = scratch(xp, "winograd.m", (size, m, q * tiles))
                kernels.input_transform(x[start:start + q], v)
                batched.matmul(xp, u.reshape(size * g, m // g, c // g),
                               v.reshape(size * g, c // g, -1),
                               out.reshape(size * g, m // g, -1))
                kernels.output_transform(out, y[start:start + q], a, b, slope)
                continue
            # 5x5: channels last, (a², T, C) and (a², T, M), so that the transforms' loops
            # run over all channels of a row of tiles (CIFAR-10's have 8 tiles a row or 4).
            v = scratch(xp, "winograd.v5", (size, q * tiles, c))
            out = scratch(xp, "winograd.m5", (size, q * tiles, m))
            kernels.input_transform_general(x[start:start + q], v, *_NONZEROS[5], 2)
            xp.matmul(v.reshape(size, -1, g, c // g).transpose(0, 2, 1, 3),
                      u.transpose(0, 1, 3, 2),
                      out=out.reshape(size, -1, g, m // g).transpose(0, 2, 1, 3))
            kernels.output_transform_general(out, y[start:start + q], _AT5, a, b, slope)

    cores.split(xp, n, transform)


def weight_grad(xp: Any, x: Any, dy: Any, group: int, wdiff: Any) -> None:
    """``wdiff`` ``(M, C/G, r, r)`` += the weight gradient of a "same" stride-1 convolution
    (``applies``) of the bottom ``x`` ``(N, C, H, W)`` given the top's gradient ``dy``
    ``(N, M, H, W)``, by F(r x r, 2x2): per chunk of samples the bottom's transform ``V``
    (the forward's ``Bᵀ d B``, laid out channels last), the gradient's 2x2 tiles transformed
    by ``G'`` (``kernels.winograd.gradient_transform``), and a² GEMMs summing ``Ĝ @ V`` over
    the tiles; back to the taps once, at the end. Each core sums its own samples; the parts
    are added in order."""
    from ..kernels.winograd import gradient_transform, input_transform_general

    n, c, h, w = x.shape
    m, g, r = dy.shape[1], group, wdiff.shape[-1]
    mg, cg = m // g, c // g
    gw, aa = _WEIGHT_GRAD[r]
    size = (r + 1) ** 2
    th, tw = (h + 1) // 2, (w + 1) // 2
    tiles = th * tw
    chunk = max(1, min(n, _CHUNK_BYTES_GRAD // (size * max(c, m) * tiles * 4)))

    def part(first: int, last: int) -> Any:
        # Scratch, not fresh arrays: two threads faulting in 16 MB temporaries at once
        # (512x512 filters) serialize on the process's page tables.
        # The first chunk's products are the total, later ones add into it: with one group
        # through sgemm's beta (batched.matmul), else through a product stack.
        total = scratch(xp, "winograd.total", (size, g, mg, cg))
        for start in range(first, last, chunk):
            q = min(last, start + chunk) - start
            v = scratch(xp, "winograd.v5", (size, q * tiles, c))
            input_transform_general(x[start:start + q], v, *_NONZEROS[r], r // 2)
            gh = scratch(xp, "winograd.gh", (size, m, q * tiles))
            gradient_transform(dy[start:start + q], gh, gw)
            if g == 1:
                batched.matmul(xp, gh, v, total.reshape(size, mg, cg),
                               accumulate=start > first)
                continue
            out = total if start == first else scratch(xp, "winograd.product", total.shape)
            xp.matmul(gh.reshape(size, g, mg, -1),
                      v.reshape(size, -1, g, cg).transpose(0, 2, 1, 3), out=out)
            if start > first:
                total += out
        return total

    parts = [p.reshape(size, m, cg) for p in cores.split(xp, n, part)]

    def back(lo: int, hi: int) -> None:
        """The parts' sum back to the taps for output channels ``lo:hi``: a pass as large as
        the weights' transform (16 MB for 512x512 filters), so each core takes its own
        channels."""
        summed = scratch(xp, "winograd.summed", (size, hi - lo, cg))
        xp.copyto(summed, parts[0][:, lo:hi])
        for more in parts[1:]:
            summed += more[:, lo:hi]
        taps = scratch(xp, "winograd.taps", (r * r, (hi - lo) * cg))
        xp.matmul(aa, summed.reshape(size, -1), out=taps)
        wdiff[lo:hi] += taps.reshape(r, r, hi - lo, cg).transpose(2, 3, 0, 1)

    cores.split(xp, m, back)
