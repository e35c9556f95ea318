"""Float32 matrix products with 512-bit vectors, for CPUs where NumPy's OpenBLAS runs
narrower kernels: on the AMD Zen 5 machines of 8 Dec 2026 the environment pins OpenBLAS to
its Haswell (AVX2) kernels, 95-115 GFLOP/s a core, where these reach 135-195 (``stack``).

The product is blocked as OpenBLAS's own (Goto's scheme): a ``KC``-deep slice of ``b`` packed
into panels ``NR`` columns wide, each ``KC``-deep block of ``a`` into panels ``MR`` rows high
(once per product, or once per stack when the stack shares ``a``), taken ``MC`` rows at a
time, and a micro-kernel (:func:`_micro`) that keeps an ``MR x NR`` block of the product in 28
vector registers while it runs down the panels: each step loads two vectors of ``b``,
broadcasts ``MR`` values of ``a`` and issues ``2·MR`` fused multiply-adds. numba compiles
no such kernel from loops (its vectorizer left a straight-line tile scalar), so the
micro-kernel is written as LLVM vector operations (a numba intrinsic), and numba caches it
with the loops around it. Edge tiles go through a small buffer. Sums run in another order
than OpenBLAS's, so results differ from ``numpy.matmul`` by float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from . import kernel

MR, NR = 14, 32  # the register tile: 14 rows x 2 vectors of 16 floats
LANES = 16
KC = 256  # depth of a packed block: an a panel (14 KiB) and a b panel (32 KiB) stay in L1
MC = 12 * MR  # rows of packed a the loops take at a time (168 x 256 floats: 168 KiB, L2)
NC = 24 * NR  # columns of a packed b block (256 x 768 floats: 768 KiB, in L2)


@intrinsic
def _micro(typingctx, depth, pa, pb, pc, ldc, load):
    """``C[:MR, :NR] (+)= A·B`` for the packed panels at addresses ``pa`` (``depth x MR``)
    and ``pb`` (``depth x NR``), ``C`` at address ``pc`` with row stride ``ldc`` floats;
    ``load`` 0 starts from zero instead of ``C``."""
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        depth, pa, pb, pc, ldc, load = args
        f32, i64 = ir.FloatType(), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             "llvm.fma.v16f32")

        def const(value):
            return ir.Constant(i64, value)

        def vector_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vec.as_pointer())

        a = builder.inttoptr(pa, f32.as_pointer())
        b = builder.inttoptr(pb, f32.as_pointer())
        c = builder.inttoptr(pc, f32.as_pointer())
        vectors = NR // LANES
        acc = [[cgutils.alloca_once(builder, vec) for _ in range(vectors)] for _ in range(MR)]
        rows = [[vector_at(c, builder.add(builder.mul(ldc, const(i)), const(LANES * v)))
                 for v in range(vectors)] for i in range(MR)]
        with builder.if_else(builder.icmp_signed("!=", load, const(0))) as (yes, no):
            with yes:
                for i in range(MR):
                    for v in range(vectors):
                        builder.store(builder.load(rows[i][v], align=4), acc[i][v])
            with no:
                for i in range(MR):
                    for v in range(vectors):
                        builder.store(ir.Constant(vec, None), acc[i][v])
        lane0 = ir.Constant(ir.IntType(32), 0)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        with cgutils.for_range(builder, depth) as loop:
            b_row = builder.gep(b, [builder.mul(loop.index, const(NR))])
            b_vecs = [builder.load(vector_at(b_row, const(LANES * v)), align=4)
                      for v in range(vectors)]
            a_row = builder.gep(a, [builder.mul(loop.index, const(MR))])
            for i in range(MR):
                value = builder.load(builder.gep(a_row, [const(i)]), align=4)
                one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, lane0)
                broadcast = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), splat)
                for v in range(vectors):
                    total = builder.call(fma, [broadcast, b_vecs[v], builder.load(acc[i][v])])
                    builder.store(total, acc[i][v])
        for i in range(MR):
            for v in range(vectors):
                builder.store(builder.load(acc[i][v]), rows[i][v], align=4)
        return context.get_dummy_value()

    return sig, codegen


@kernel
def _pack_b(b, k0, k1, j0, j1, out):  # pragma: no cover - compiled
    """Rows ``k0:k1``, columns ``j0:j1`` of ``b`` into ``out[p, k, :NR]``, panel ``p`` of
    ``NR`` columns; the last panel padded with zeros."""
    depth = k1 - k0
    full = (j1 - j0) // NR
    for p in range(full):
        for k in range(depth):
            src = b[k0 + k, j0 + p * NR:j0 + p * NR + NR]
            dst = out[p, k]
            for j in range(NR):
                dst[j] = src[j]
    rest = j1 - j0 - full * NR
    if rest:
        for k in range(depth):
            src = b[k0 + k, j0 + full * NR:j1]
            dst = out[full, k]
            for j in range(rest):
                dst[j] = src[j]
            for j in range(rest, NR):
                dst[j] = np.float32(0)


@kernel
def _pack_a(a, i0, i1, k0, k1, out):  # pragma: no cover - compiled
    """Rows ``i0:i1``, columns ``k0:k1`` of ``a`` into ``out[p, k, :MR]`` (panel ``p`` of
    ``MR`` rows, transposed); rows past ``i1`` zero."""
    depth = k1 - k0
    for p in range((i1 - i0 + MR - 1) // MR):
        for r in range(MR):
            i = i0 + p * MR + r
            if i < i1:
                row = a[i]
                for k in range(depth):
                    out[p, k, r] = row[k0 + k]
            else:
                for k in range(depth):
                    out[p, k, r] = np.float32(0)


@kernel
def _even_step(size, most, multiple):  # pragma: no cover - compiled
    """Blocks of at most ``most`` covering ``size`` in as few, as even blocks as a
    ``multiple`` allows: K = 576 as 3 x 192, not 256 + 256 + 64 (a short last block spends
    its time loading and storing the register tile)."""
    blocks = (size + most - 1) // most
    step = (size + blocks - 1) // blocks
    return (step + multiple - 1) // multiple * multiple


@kernel
def _product(packed_a, m, b, c, accumulate, packed_b, tile):  # pragma: no cover - compiled
    """``c (+)= a @ b`` for ``a`` ``(m, K)`` packed by ``_pack_a`` per depth block into
    ``packed_a[block]``, 2-D ``b`` ``(K, N)``, ``c`` ``(m, N)`` with unit column stride."""
    depth, n = b.shape
    ldc = c.strides[0] // 4
    kc = _even_step(depth, KC, 1)
    nc = _even_step(n, NC, NR)
    for j0 in range(0, n, nc):
        j1 = min(n, j0 + nc)
        for k0 in range(0, depth, kc):
            k1 = min(depth, k0 + kc)
            load = 1 if accumulate or k0 > 0 else 0
            _pack_b(b, k0, k1, j0, j1, packed_b)
            panels = packed_a[k0 // kc]
            for i0 in range(0, m, MC):
                i1 = min(m, i0 + MC)
                for jp in range((j1 - j0 + NR - 1) // NR):
                    j = j0 + jp * NR
                    width = min(NR, j1 - j)
                    for ip in range((i1 - i0 + MR - 1) // MR):
                        i = i0 + ip * MR
                        height = min(MR, i1 - i)
                        pa, pb = panels[i // MR].ctypes.data, packed_b[jp].ctypes.data
                        if height == MR and width == NR:
                            _micro(k1 - k0, pa, pb, c[i:, j:].ctypes.data, ldc, load)
                            continue
                        # An edge tile runs in the buffer through the same fused
                        # multiply-adds as a full one, so that a row's values do not depend
                        # on where the row falls among the panels (a batch of 32 gives each
                        # sample what a batch of 64 does).
                        if load:
                            for r in range(height):
                                for q in range(width):
                                    tile[r, q] = c[i + r, j + q]
                        _micro(k1 - k0, pa, pb, tile.ctypes.data, NR, load)
                        for r in range(height):
                            for q in range(width):
                                c[i + r, j + q] = tile[r, q]


def stack(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool,
          buffer: Callable[[str, tuple[int, ...]], np.ndarray] | None = None) -> None:
    """``c[s] = a[s] @ b[s]`` (``+=`` with ``accumulate``) for stacks ``a`` ``(S, M, K)``,
    ``b`` ``(S, K, N)``, ``c`` ``(S, M, N)`` of float32, ``K`` at least 1, any strides but a
    unit column stride in ``c``; shapes are trusted. An ``a`` shared by the stack (stride
    0: a layer's weights against each sample) is packed once. ``buffer(role, shape)`` gives
    the packing buffers (new arrays by default): kept per thread (``layers.scratch``), a
    2-thread pass no longer faults in megabytes a call on both cores at once, which
    serialized them."""
    new = buffer or (lambda role, shape: np.empty(shape, dtype=np.float32))
    m, depth = a.shape[1:]
    _stack(a, b, c, accumulate, new("gemm.a", (-(-depth // KC), -(-m // MR), KC, MR)),
           new("gemm.b", (NC // NR, KC, NR)), new("gemm.tile", (MR, NR)))


@kernel
def _stack(a, b, c, accumulate, packed_a, packed_b, tile):  # pragma: no cover - compiled
    """``stack`` with its buffers."""
    m, depth = a.shape[1:]
    kc = _even_step(depth, KC, 1)
    for s in range(a.shape[0]):
        if s == 0 or a.strides[0] != 0:
            for k0 in range(0, depth, kc):
                _pack_a(a[s], 0, m, k0, min(depth, k0 + kc), packed_a[k0 // kc])
        _product(packed_a, m, b[s], c[s], accumulate, packed_b, tile)
