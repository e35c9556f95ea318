"""The compiled ReLU passes are NumPy's ``maximum`` and ``multiply`` by the ``> 0`` mask bit
for bit (NaN, ±0 and infinities included), in place too, for sizes that are not whole
blocks."""

import numpy as np
import pytest

ew = pytest.importorskip("brewnet.kernels.elementwise")  # compiles with numba on import

SPECIAL = np.array([np.nan, -0.0, 0.0, -1.5, 2.0, np.inf, -np.inf, 1e-45, -1e-45], np.float32)


def values(size: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(size).astype(np.float32)
    x[:SPECIAL.size] = SPECIAL
    return x


def same_bits(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


@pytest.mark.parametrize("size", [9, ew.BLOCK + 5, 3 * ew.BLOCK])
@np.errstate(invalid="ignore")  # NumPy's own inf·0 in the references
def test_kernels_are_numpy_bit_for_bit(size):
    """Out of place and in place, every value equals NumPy's result bit for bit."""
    x, dy = values(size, 1), values(size, 2)
    y = np.empty_like(x)
    ew.relu_forward(x, y)
    same_bits(y, np.maximum(x, 0))
    dx = np.empty_like(x)
    ew.relu_backward(dy, x, dx)
    same_bits(dx, np.multiply(dy, x > 0))
    inplace = x.copy()
    ew.relu_forward(inplace, inplace)
    same_bits(inplace, np.maximum(x, 0))
    inplace = dy.copy()
    ew.relu_backward(inplace, x, inplace)
    same_bits(inplace, np.multiply(dy, x > 0))
