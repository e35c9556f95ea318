"""Element-wise kernels spread over as many threads as NumPy's BLAS uses.

Convolutions keep every core busy inside OpenBLAS; the BatchNorm, Scale and ReLU passes
between them are numba kernels that release the GIL (``nogil``), so :func:`split` runs one
over ranges of its outer extent, the calling thread taking the first range and resident
helper threads the others. The thread count is OpenBLAS's own, asked on every call: a
program that sets ``OPENBLAS_NUM_THREADS=1`` (or ``openblas_set_num_threads(1)``) runs the
kernels serially too, and the kernels never run beside a GEMM (the net runs one layer at a
time), so the two pools never compete for the cores.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded, found among the process's mapped files (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    return ctypes.CDLL(paths[0]) if paths else None


def blas_symbol(suffix: str) -> Any:
    """OpenBLAS's ``openblas_<suffix>`` function (any of its builds' spellings), or None."""
    lib = _openblas()
    if lib is None:
        return None
    for name in (f"scipy_openblas_{suffix}64_", f"openblas_{suffix}64_", f"openblas_{suffix}"):
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


@cache
def _get_threads() -> Callable[[], int] | None:
    return blas_symbol("get_num_threads")


def blas_threads() -> int | None:
    """Threads NumPy's OpenBLAS uses now, or None when the BLAS is not OpenBLAS."""
    get = _get_threads()
    return int(get()) if get is not None else None


class _Helper:
    """A resident thread that runs one job at a time for the thread that owns it."""

    def __init__(self) -> None:
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._job: tuple[Callable[..., Any], tuple] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._serve, daemon=True, name="brewnet-kernel").start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            fn, args = self._job
            try:
                fn(*args)
            except BaseException as e:  # handed to the caller in wait()
                self._error = e
            self._done.release()

    def start(self, fn: Callable[..., Any], args: tuple) -> None:
        self._job = (fn, args)
        self._go.release()

    def wait(self) -> None:
        self._done.acquire()
        error, self._error = self._error, None
        if error is not None:
            raise error


_local = threading.local()
# A forked child has none of the parent's helper threads: it makes its own when it needs them.
os.register_at_fork(after_in_child=lambda: _local.__dict__.pop("helpers", None))


# Below this many elements a kernel is done before a helper thread would wake.
MIN_SPLIT = 1 << 16


def threads_for(size: int) -> int:
    """How many threads :func:`split` gives work touching ``size`` elements now."""
    return (blas_threads() or 1) if size >= MIN_SPLIT else 1


def split(kernel: Callable[..., Any], args: tuple, extent: int, size: int) -> None:
    """``kernel(*args, lo, hi)`` over ``[0, extent)`` cut into one range per BLAS thread;
    ``size`` is the elements it touches, and below ``MIN_SPLIT`` it runs whole in the calling
    thread. The kernel must release the GIL and write disjoint parts for disjoint ranges, so
    the result is the same however it is cut."""
    parts = min(threads_for(size), extent)
    if parts <= 1:
        kernel(*args, 0, extent)
        return
    helpers = _local.__dict__.setdefault("helpers", [])
    while len(helpers) < parts - 1:
        helpers.append(_Helper())
    bounds = [extent * i // parts for i in range(parts + 1)]
    for helper, lo, hi in zip(helpers, bounds[1:-1], bounds[2:], strict=False):
        helper.start(kernel, (*args, lo, hi))
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for helper in helpers[:parts - 1]:
            helper.wait()
