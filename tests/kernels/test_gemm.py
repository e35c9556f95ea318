"""brewnet.kernels.gemm: float32 products with 512-bit vectors, and where brewnet.batched
routes products to them.

Facts checked: ``stack`` gives the float64 product within float32 rounding for every kind of
tile (full, short rows, narrow columns, both), several depth, row and column blocks, each
row and column the same bits wherever it falls among the panels, operands of any strides
(transposed, Fortran-ordered, one matrix shared by the stack) and an output inside a wider
array; ``accumulate`` adds to what the output holds, edge tiles and every depth block
included. ``batched.matmul``/``product`` use it only for float32 products of shapes it
serves faster than OpenBLAS (``_suits``: rows, depth, columns a packing serves) while OpenBLAS
has one thread, and only where the CPU has AVX-512 at full width (not AMD family 25) and
``BREWNET_GEMM`` is not ``openblas``.
"""

from __future__ import annotations

import numpy as np
import pytest

from brewnet import batched, blas_env, cores, kernels

pytestmark = pytest.mark.skipif(not kernels.enabled(np), reason="needs the compiled kernels")


def _random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(a, b, out, expected_start=None):
    """``out`` is ``a @ b`` (plus ``expected_start``) to float32 rounding of a depth-K sum."""
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if expected_start is not None:
        exact = exact + expected_start
    bound = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    assert np.all(np.abs(out - exact) <= 1e-6 * a.shape[-1] * (bound + 1))


# (S, M, K, N): MR = 14, NR = 32, KC = 256, MC = 168, NC = 768.
SHAPES = {
    "full-tiles": (2, 28, 64, 64),
    "short-rows": (1, 17, 40, 64),
    "narrow-columns": (1, 28, 40, 45),
    "both-edges": (3, 15, 17, 33),
    "one-by-one": (1, 1, 1, 1),
    "depth-blocks": (1, 30, 600, 70),
    "row-blocks": (1, 350, 20, 40),
    "column-blocks": (1, 20, 30, 1700),
}


@pytest.mark.parametrize("name", SHAPES)
def test_stack_is_the_product(name):
    from brewnet.kernels.gemm import stack

    s, m, k, n = SHAPES[name]
    a, b = _random((s, m, k), 1), _random((s, k, n), 2)
    out = np.full((s, m, n), np.nan, np.float32)
    stack(a, b, out, False)
    _check(a, b, out)


@pytest.mark.parametrize("name", ["both-edges", "depth-blocks", "column-blocks"])
def test_stack_accumulates_into_the_output(name):
    from brewnet.kernels.gemm import stack

    s, m, k, n = SHAPES[name]
    a, b = _random((s, m, k), 3), _random((s, k, n), 4)
    start = _random((s, m, n), 5)
    out = start.copy()
    stack(a, b, out, True)
    _check(a, b, out, start)


def test_a_rows_values_do_not_depend_on_where_it_falls_among_the_panels():
    """Bit for bit, over several depth blocks: edge tiles run the full tiles' fused
    multiply-adds, so a batch of 32 gives each sample what a batch of 64 does (the parallel
    equivalence tests: two ranks of 32 against one process of 64)."""
    from brewnet.kernels.gemm import stack

    a, b = _random((1, 64, 600), 19), _random((1, 600, 70), 20)
    whole = np.empty((1, 64, 70), np.float32)
    stack(a, b, whole, False)
    for rows in (slice(0, 32), slice(5, 37), slice(60, 64)):
        part = np.empty((1, rows.stop - rows.start, 70), np.float32)
        stack(a[:, rows], b, part, False)
        np.testing.assert_array_equal(part, whole[:, rows])
    columns = np.empty((1, 64, 33), np.float32)
    stack(a, b[:, :, 37:], columns, False)
    np.testing.assert_array_equal(columns, whole[:, :, 37:])


def test_stack_reads_any_strides_and_writes_inside_a_wider_array():
    """A transposed ``a``, a Fortran-ordered ``b``, one ``a`` shared by the stack (stride 0),
    and an output whose rows are part of longer rows."""
    from brewnet.kernels.gemm import stack

    a = _random((2, 50, 70), 6).transpose(0, 2, 1)  # (2, 70, 50)
    b = np.asfortranarray(_random((2, 50, 90), 7))
    wide = np.zeros((2, 70, 130), np.float32)
    out = wide[:, :, 20:110]
    stack(a, b, out, False)
    _check(a, b, out)
    assert not wide[:, :, :20].any() and not wide[:, :, 110:].any()
    shared = np.broadcast_to(_random((33, 40), 8), (3, 33, 40))
    b = _random((3, 40, 65), 9)
    out = np.empty((3, 33, 65), np.float32)
    stack(shared, b, out, False)
    _check(shared, b, out)


@pytest.fixture
def own(monkeypatch):
    """brewnet's products on (whatever this CPU is), OpenBLAS on one thread, and a spy on
    ``stack``: the list of the products' shapes it was given."""
    from brewnet.kernels import gemm

    monkeypatch.setattr(batched, "wide_kernels", lambda: True)
    before = cores.blas_threads()
    cores.set_blas_threads(1)
    calls: list = []
    real = gemm.stack
    monkeypatch.setattr(gemm, "stack",
                        lambda a, b, out, accumulate, buffer: calls.append(a.shape) or real(
                            a, b, out, accumulate, buffer))
    yield calls
    if before is not None:
        cores.set_blas_threads(before)


def test_matmul_and_product_route_large_float32_products(own):
    a, b = _random((4, 40, 50), 10), _random((4, 50, 200), 11)
    out = np.empty((4, 40, 200), np.float32)
    batched.matmul(np, a, b, out)
    _check(a, b, out)
    start = out.copy()
    batched.matmul(np, a, b, out, accumulate=True)
    _check(a, b, out, start)
    weight, y = _random((40, 50), 12), np.empty((4, 40, 200), np.float32)
    batched.product(np, weight, b, y)  # a 2-D operand shared by the stack
    _check(np.broadcast_to(weight, (4, 40, 50)), b, y)
    flat = np.empty((40, 200), np.float32)
    batched.product(np, weight, b[0], flat)
    _check(weight, b[0], flat)
    assert own == [(4, 40, 50)] * 3 + [(1, 40, 50)]


def test_small_float64_and_multithreaded_products_stay_with_openblas(own):
    small_a, small_b = _random((2, 10, 10), 13), _random((2, 10, 10), 14)
    batched.product(np, small_a, small_b, np.empty((2, 10, 10), np.float32))
    a, b = _random((2, 40, 50), 15), _random((2, 50, 200), 16)
    batched.product(np, a.astype(np.float64), b.astype(np.float64), np.empty((2, 40, 200)))
    cores.set_blas_threads(2)
    out = np.empty((2, 40, 200), np.float32)
    batched.product(np, a, b, out)
    _check(a, b, out)
    assert own == []


@pytest.mark.parametrize("m,k,columns,suits", [
    (64, 64, 196, True),
    (512, 512, 49, False),  # too few columns to repay packing the rows
    (24, 96, 3136, False),  # too few rows to repay packing the columns
    (256, 16, 3136, False),  # too shallow
])
def test_which_shapes_the_kernel_takes(m, k, columns, suits):
    assert batched._suits(m, k, columns) is suits


def test_a_shared_left_operand_counts_every_products_columns(own):
    """Packed once for the stack, a shared operand (a layer's weights against 4 samples of
    49 pixels) is repaid by all 196 columns; unshared, each product's 49 are too few."""
    b = _random((4, 50, 49), 21)
    out = np.empty((4, 40, 49), np.float32)
    batched.matmul(np, _random((4, 40, 50), 22), b, out)
    assert own == []
    weight = _random((40, 50), 23)
    batched.product(np, weight, b, out)
    assert own == [(4, 40, 50)]
    _check(np.broadcast_to(weight, (4, 40, 50)), b, out)


def test_disagreeing_shapes_reach_numpys_error(own):
    with pytest.raises(ValueError):
        batched.product(np, _random((40, 50), 17), _random((2, 51, 60), 18),
                        np.empty((2, 40, 60), np.float32))
    assert own == []


CPUINFO = "vendor_id\t: {vendor}\ncpu family\t: {family}\nflags\t\t: fpu sse2 avx2 {flags}\n\n"


@pytest.mark.parametrize("vendor,family,flags,env,wide", [
    ("AuthenticAMD", "26", "avx512f", "", True),  # Zen 5: full-width AVX-512
    ("GenuineIntel", "6", "avx512f", "", True),
    ("AuthenticAMD", "25", "avx512f", "", False),  # Zen 4: two 256-bit halves
    ("AuthenticAMD", "26", "", "", False),  # no AVX-512
    ("AuthenticAMD", "26", "avx512f", "openblas", False),  # asked for OpenBLAS
])
def test_wide_kernels_serve_full_width_avx512_unless_told_not_to(monkeypatch, vendor, family,
                                                                  flags, env, wide):
    monkeypatch.setattr(blas_env, "read_cpuinfo",
                        lambda: CPUINFO.format(vendor=vendor, family=family, flags=flags))
    monkeypatch.setenv(batched.ENV, env)
    batched.wide_kernels.cache_clear()
    try:
        assert batched.wide_kernels() is wide
    finally:
        batched.wide_kernels.cache_clear()
