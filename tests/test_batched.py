"""brewnet.batched: stacked float32 products in one OpenBLAS batch call.

Facts checked: the batch call gives numpy.matmul's products (within float32 rounding) and is
the one made for large products while OpenBLAS has two threads; products of at most 100^3
multiply-adds (OpenBLAS's small-matrix path, which crashes in NumPy's OpenBLAS 0.3.31),
one BLAS thread, stacks the threads would share unevenly (one product), and operands that
are not three C-contiguous float32 stacks go through numpy.matmul.
"""

from __future__ import annotations

import numpy as np
import pytest

from brewnet import batched, cores


@pytest.fixture
def two_blas_threads(monkeypatch):
    """OpenBLAS on two threads, and brewnet's own products (tests/kernels/test_gemm.py) off:
    on one thread they would take the products these tests watch OpenBLAS make."""
    if batched._batch_call() is None:
        pytest.skip("NumPy's BLAS is not the ILP64 OpenBLAS with a batch call")
    monkeypatch.setattr(batched, "wide_kernels", lambda: False)
    before = cores.blas_threads()
    cores.set_blas_threads(2)
    yield
    cores.set_blas_threads(before)


def _stacks(s: int, m: int, k: int, n: int):
    rng = np.random.default_rng(8)
    return (rng.standard_normal((s, m, k)).astype(np.float32),
            rng.standard_normal((s, k, n)).astype(np.float32),
            np.zeros((s, m, n), np.float32))


def _spy(monkeypatch) -> list:
    calls: list = []
    real = batched._batch_call()

    def call(*args):
        calls.append(args)
        real(*args)
    monkeypatch.setattr(batched, "_batch_call", lambda: call)
    return calls


def test_a_large_stack_is_one_batch_call_with_matmuls_products(two_blas_threads, monkeypatch):
    calls = _spy(monkeypatch)
    a, b, out = _stacks(6, 70, 130, 150)  # 70·130·150 > 100^3
    out.fill(np.nan)
    batched.matmul(np, a, b, out)
    assert len(calls) == 1
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", ["small", "single", "strided", "float64"])
def test_other_operands_go_through_matmul(two_blas_threads, monkeypatch, case):
    calls = _spy(monkeypatch)
    a, b, out = _stacks(3, 64, 16, 900)  # 64·16·900 <= 100^3: OpenBLAS's small path
    if case != "small":
        a, b, out = _stacks(1 if case == "single" else 3, 70, 130, 150)
    if case == "strided":
        b = np.asfortranarray(b)
    if case == "float64":
        a, b, out = a.astype(np.float64), b.astype(np.float64), out.astype(np.float64)
    batched.matmul(np, a, b, out)
    assert calls == []
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5, atol=1e-4)


def test_one_blas_thread_goes_through_matmul(two_blas_threads, monkeypatch):
    """On one thread (a pass splitting its batch) the batch call is the same loop."""
    calls = _spy(monkeypatch)
    cores.set_blas_threads(1)
    a, b, out = _stacks(2, 70, 130, 150)
    batched.matmul(np, a, b, out)
    assert calls == []


def test_disagreeing_shapes_are_an_error(two_blas_threads):
    a, b, out = _stacks(2, 70, 130, 150)
    with pytest.raises(ValueError, match="do not agree"):
        batched.matmul(np, a, b, out[:1])


@pytest.mark.parametrize("threads", [1, 2])
def test_accumulating_adds_the_products_in_one_batch_call(two_blas_threads, monkeypatch,
                                                          threads):
    """``accumulate`` adds the products to ``out`` (sgemm's beta 1), in one batch call on one
    BLAS thread too, where it saves matmul's temporary stack and a pass over ``out``."""
    calls = _spy(monkeypatch)
    cores.set_blas_threads(threads)
    a, b, out = _stacks(3, 70, 130, 150)
    start = np.random.default_rng(9).standard_normal(out.shape).astype(np.float32)
    out[...] = start
    batched.matmul(np, a, b, out, accumulate=True)
    assert len(calls) == 1
    np.testing.assert_allclose(out, start + np.matmul(a, b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", ["small", "strided"])
def test_accumulating_through_matmul_adds_too(two_blas_threads, monkeypatch, case):
    calls = _spy(monkeypatch)
    a, b, out = _stacks(3, 64, 16, 900) if case == "small" else _stacks(3, 70, 130, 150)
    if case == "strided":
        b = np.asfortranarray(b)
    out.fill(1)
    batched.matmul(np, a, b, out, accumulate=True)
    assert calls == []
    np.testing.assert_allclose(out, 1 + np.matmul(a, b), rtol=1e-5, atol=1e-4)
