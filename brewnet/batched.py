"""Stacked float32 products ``c[i] = a[i] @ b[i]`` in one call to OpenBLAS's
``cblas_sgemm_batch_strided``, whose threads take whole products, where ``numpy.matmul`` calls
sgemm once per product and OpenBLAS splits each one over its threads. For the 16 small
products of a Winograd layer at batch 1 (GoogLeNet's conv2: 16 of 192x64 by 64x784) that
split ran 2.1 ms on two threads, the batch call 1.55 (3.1 on one thread); the two groups of
CaffeNet's conv2 at batch 1 2.28 -> 2.15 ms. On one thread (a pass splitting its batch,
``brewnet.cores``) both are the same loop, so the call is made only while OpenBLAS has more
threads, and only for stacks its threads share evenly; or to add the products into the
output (sgemm's beta 1), which matmul cannot: the Winograd weight gradient's chunks sum into
one stack that way, without a product stack and a pass adding it (ResNet-50's 512-channel
layer at batch 8, two threads each summing 4 samples: 14.8 -> 12.9 ms).

Where the CPU has AVX-512 at full width, products on one thread go to brewnet's own kernel
instead (``kernels/gemm.py``, ``wide_kernels``), and ``product`` offers it to callers of
``numpy.matmul`` with a 2-D operand shared by a stack.

Only NumPy's own OpenBLAS of 64-bit integers (the ``scipy_openblas64_`` of NumPy's wheels,
whose other functions carry that suffix, so the argument widths are known) is called, and
only for products of more than 100^3 multiply-adds: below that OpenBLAS routes a batch to
its small-matrix kernels, which crash in builds for several CPUs (DYNAMIC_ARCH, as NumPy's)
up to 0.3.31 (OpenMathLib/OpenBLAS#5980). Any other BLAS, CuPy arrays, or operands not laid
out as three C-contiguous stacks go through ``xp.matmul``.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from typing import Any

import numpy as np

from . import blas_env, cores, kernels

_ROW_MAJOR, _NO_TRANS = 101, 111
SMALL_PRODUCT = 100 ** 3  # OpenBLAS's small-matrix bound on m·n·k (module docstring)
MIN_ROWS, MIN_DEPTH, MIN_COLUMNS = 40, 32, 196  # see _suits
ENV = "BREWNET_GEMM"


@cache
def _batch_call() -> Any:
    """OpenBLAS's ``cblas_sgemm_batch_strided`` with its argument types, or None."""
    if cores.blas_function("scipy_cblas_sgemm64_") is None:  # not the ILP64 NumPy OpenBLAS
        return None
    call = cores.blas_function("cblas_sgemm_batch_strided",
                               "scipy_cblas_sgemm_batch_strided64_")
    if call is None:
        return None
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, f32,
                     ptr, i64, i64, ptr, i64, i64, f32, ptr, i64, i64, i64]
    call.restype = None
    return call


def _shared_evenly(products: int, threads: int) -> bool:
    """Whether OpenBLAS's ``threads`` (more than one) share ``products`` whole products within
    a quarter of each other's share: one product on one thread is slower than split."""
    return threads > 1 and (products % threads == 0 or products >= 4 * threads)


def _stack(a: Any) -> bool:
    return (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 3
            and a.flags.c_contiguous)


@cache
def wide_kernels() -> bool:
    """Whether brewnet's own 512-bit products (``kernels/gemm.py``) serve: the compiled
    kernels are on, the CPU has AVX-512 at full width (not AMD's Zen 4, family 25, which
    runs it as two halves and where OpenBLAS's AVX2 kernels were the faster:
    ``blas_env``), and ``BREWNET_GEMM`` is not ``openblas``."""
    if os.environ.get(ENV, "").strip().lower() == "openblas" or not kernels.enabled(np):
        return False
    return blas_env.avx512_width(blas_env.read_cpuinfo()) == 512


def _kernel_serves() -> bool:
    """Whether brewnet's products may run now: ``wide_kernels`` and OpenBLAS on one thread
    (a pass splitting its batch, or one thread asked for): the kernel runs on the calling
    thread only."""
    return wide_kernels() and (cores.blas_threads() or 1) == 1


def _own_shapes(xp: Any, a: Any, b: Any, out: Any) -> bool:
    """Whether brewnet's products take these operands: NumPy float32 stacks of agreeing
    shapes (the kernel trusts them), unit column stride in ``out``, products whose shapes
    suit the kernel (``_suits``; a left operand shared by the stack is packed once, for all
    its products' columns)."""
    if not (xp is np and all(isinstance(v, np.ndarray) and v.dtype == np.float32
                             and v.ndim == 3 for v in (a, b, out))):
        return False
    s, m, k = a.shape
    n = b.shape[2]
    shared = s if s > 1 and a.strides[0] == 0 else 1
    return (b.shape[:2] == (s, k) and out.shape == (s, m, n) and out.strides[2] == 4
            and _suits(m, k, n * shared))


def _suits(m: int, k: int, columns: int) -> bool:
    """Whether ``(m, k)`` by ``(k, n)`` products, ``columns`` columns for each packing of the
    rows, run faster through brewnet's kernel than through OpenBLAS's Haswell kernels
    (measured on Zen 5): ``MIN_ROWS`` rows to share each packed column panel (MobileNet
    v2's 24-channel pointwise layers: 64 against 80 GFLOP/s), ``MIN_DEPTH`` steps a register
    tile (16: 35 against 57), and ``MIN_COLUMNS`` columns to repay packing the rows (512 x
    512 by 49 columns: 0.87x OpenBLAS's speed, by 196: 1.25x; ResNet-50 at batch 1 ran 12%
    slower without this bound). The columns count the samples in the call (Winograd's tiles
    of a chunk, a pointwise layer's weights against each sample), so a sample's values may
    differ in the last bits with the batch or its split, as OpenBLAS's own do (tests/layers/
    test_batch_split.py); no caller passes samples as rows, which keeps the rows of a
    sample's InnerProduct output the same bits whatever the batch (two ranks of 32 against
    one process of 64: tests/parallel/test_equivalence.py)."""
    return m >= MIN_ROWS and k >= MIN_DEPTH and columns >= MIN_COLUMNS


def _own(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool) -> None:
    """brewnet's products, with this thread's packing buffers."""
    from .kernels.gemm import stack
    from .layers.scratch import scratch

    stack(a, b, out, accumulate, lambda role, shape: scratch(np, role, shape))


def matmul(xp: Any, a: Any, b: Any, out: Any, accumulate: bool = False) -> None:
    """``out[i] = a[i] @ b[i]`` (``+=`` with ``accumulate``) for stacks ``a`` ``(S, M, K)``,
    ``b`` ``(S, K, N)``, ``out`` ``(S, M, N)``: brewnet's own products where they serve
    (``_own_shapes``, ``_kernel_serves``), else one batch call where it applies (module
    docstring), else ``xp.matmul``. Accumulating, the call is made on one thread too: its
    products add into ``out`` (sgemm's beta 1) where matmul's go through a temporary stack
    and another pass over ``out``."""
    if _own_shapes(xp, a, b, out) and _kernel_serves():
        _own(a, b, out, accumulate)
        return
    call = _batch_call() if xp is np else None
    if (call is None or not (_stack(a) and _stack(b) and _stack(out))
            or a.shape[1] * a.shape[2] * b.shape[2] <= SMALL_PRODUCT
            or not (accumulate or _shared_evenly(a.shape[0], cores.blas_threads() or 1))):
        if accumulate:
            out += xp.matmul(a, b)
        else:
            xp.matmul(a, b, out=out)
        return
    s, m, k = a.shape
    n = b.shape[2]
    if b.shape[:2] != (s, k) or out.shape != (s, m, n):
        raise ValueError(f"stacked shapes {a.shape} @ {b.shape} -> {out.shape} do not agree")
    call(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, k, m * k,
         b.ctypes.data, n, k * n, 1.0 if accumulate else 0.0, out.ctypes.data, n, m * n, s)


def product(xp: Any, a: Any, b: Any, out: Any) -> None:
    """``xp.matmul(a, b, out=out)``, through brewnet's own products where they serve
    (``_kernel_serves``, then ``_own_shapes``): operands of two or three axes, a 2-D one
    shared by every product of the other's stack (NumPy's broadcasting)."""
    if (xp is np and out.ndim in (2, 3) and a.ndim in (2, 3) and b.ndim in (2, 3)
            and _kernel_serves()):  # before any view
        s = out.shape[0] if out.ndim == 3 else 1
        out3 = out if out.ndim == 3 else out[None]
        a3 = a if a.ndim == 3 else np.broadcast_to(a, (s, *a.shape))
        b3 = b if b.ndim == 3 else np.broadcast_to(b, (s, *b.shape))
        if _own_shapes(xp, a3, b3, out3):
            _own(a3, b3, out3, False)
            return
    xp.matmul(a, b, out=out)

