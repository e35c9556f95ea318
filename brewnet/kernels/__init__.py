"""Optional compiled kernels (numba) for the CPU hot spots that NumPy idioms cannot make fast.

Layers and solvers ask :func:`enabled` with their array module; when it says no (numba absent,
CuPy arrays, or ``BREWNET_KERNELS=numpy`` in the environment) they run their NumPy bodies, which
stay the reference the kernels are tested against. Kernels compile on first use and are cached
on disk (next to this package, or numba's per-user cache when the install is read-only).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

# An array argument a kernel is told to skip (size 0): the optional inputs and outputs of the
# BatchNorm and Scale kernels.
SKIP = np.empty(0, dtype=np.float32)

# Read once at import: the choice must not change under a net that has allocated for it.
AVAILABLE = (importlib.util.find_spec("numba") is not None
             and os.environ.get("BREWNET_KERNELS", "").lower() != "numpy")


def enabled(xp) -> bool:
    """Whether arrays of module ``xp`` go through the compiled kernels."""
    return AVAILABLE and xp is np and _numba_imports()


@functools.cache
def _numba_imports() -> bool:
    """numba imports (it refuses NumPy versions it does not support); tried on first use only,
    so ``import brewnet`` never pays for importing numba."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernel(function, reassociate: bool = False):
    """``function`` compiled by numba: cached on disk, IEEE arithmetic (results must match the
    NumPy bodies; NumPy's error model too, so a division gives inf or NaN as NumPy's does
    instead of testing its divisor for zero, a test that kept loops with a division from
    vectorizing), serial, and without the GIL, so that threads can call kernels at once (the
    data feed's workers; a layer splitting its batch over the cores, ``brewnet.cores``; numba's
    own threads over planes measured slower on 2 cores, where they fight OpenBLAS's).
    ``reassociate`` lets LLVM reorder additions so a sum vectorizes: only for float64 sums of
    float32 values, whose order changes nothing at float32 precision. Without a writable cache
    folder (a read-only install and no home) it still compiles, once per process."""
    from numba import njit

    fastmath = {"reassoc"} if reassociate else False
    try:
        return njit(cache=True, fastmath=fastmath, nogil=True, error_model="numpy")(function)
    except RuntimeError:  # numba's "cannot cache function ...: no locator available"
        return njit(cache=False, fastmath=fastmath, nogil=True, error_model="numpy")(function)
