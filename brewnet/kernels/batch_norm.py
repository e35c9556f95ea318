"""BatchNorm's bottom gradient with batch statistics in one pass and no temporaries (the NumPy
body in ``brewnet.layers.batch_norm`` makes two full-size arrays); same operations in the
same order per element, so bit-identical to it. Safe in place: ``dx`` may be ``dy``."""

from __future__ import annotations

from . import kernel


@kernel
def backward(dy, y, mean_dy, mean_dyy, std, dx):  # pragma: no cover - compiled
    """``dx = (dy − (y·mean_dyy + mean_dy)) / std`` over ``(N, C, S)``, the statistics
    ``(1, C, 1)``."""
    n, c, s = dy.shape
    for b in range(n):
        for ch in range(c):
            a, m, d = mean_dyy[0, ch, 0], mean_dy[0, ch, 0], std[0, ch, 0]
            for k in range(s):
                dx[b, ch, k] = (dy[b, ch, k] - (y[b, ch, k] * a + m)) / d
