"""Caffe's SGD step for one parameter in one pass over memory, instead of five NumPy passes.

Per element, in float32 and in Caffe's order (``fastmath`` off, so no fused multiply-adds and
the results are bit-identical to ``brewnet.solver.rules.sgd``)::

    g ← diff + λ·w          (skipped when λ is 0, as the NumPy body skips it)
    V ← μ·V + rate·g ;  diff ← V ;  w ← w − V
"""

from __future__ import annotations

import numpy as np

from . import kernel


@kernel
def sgd_step(data, diff, history, decay, momentum, rate):  # pragma: no cover - compiled
    """Arrays of one shape, C-contiguous; the scalars are float32."""
    w, g, v = data.reshape(data.size), diff.reshape(diff.size), history.reshape(history.size)
    decayed = decay != np.float32(0)
    for k in range(w.size):
        grad = g[k] + decay * w[k] if decayed else g[k]
        step = momentum * v[k] + rate * grad
        v[k] = step
        g[k] = step
        w[k] = w[k] - step
