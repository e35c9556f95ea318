"""Adam (Caffe's ``AdamSolver``): bias-corrected decaying means of the gradient and of its
square::

    m ← β1·m + (1−β1)·g
    v ← β2·v + (1−β2)·g²
    diff ← local_rate · √(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε),   t = iter + 1

with β1 = ``momentum``, β2 = ``momentum2`` (default 0.999) and ε = ``delta``. Two history
arrays per parameter, in Caffe's SolverState order: every parameter's m, then every v. Weight
decay is added to g beforehand (coupled, not AdamW).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..errors import SolverError
from .sgd import SGDSolver


def bias_correction(beta1: np.float32, beta2: np.float32, t: int) -> np.float32:
    """√(1−β2ᵗ)/(1−β1ᵗ). Caffe's ``pow(beta, t)`` with an int exponent computes in double;
    the result is stored as a float."""
    b1, b2 = float(beta1), float(beta2)
    return np.float32(math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))


class AdamSolver(SGDSolver):
    """``AdamSolver(path_or_param)`` as pycaffe's; ``history`` holds m for every parameter,
    then v for every parameter."""

    history_slots: ClassVar[int] = 2

    def _check_param(self) -> None:
        """β1 = 1 divides by zero and β2 > 1 takes the root of a negative number in the bias
        correction: refuse them before training rather than at the first update."""
        super()._check_param()
        for field, name in (("momentum", "beta1"), ("momentum2", "beta2")):
            value = getattr(self.param, field)
            if not 0 <= value < 1:
                raise SolverError(f"Adam's {field} ({name}) must be in [0, 1), got {value}",
                                  file=self.source)

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        n = len(self.net.learnable_params)
        m, v = self.history[param_id], self.history[n + param_id]
        scratch = self._scratch[param_id]
        beta1, beta2 = np.float32(self.param.momentum), np.float32(self.param.momentum2)
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        correction = bias_correction(beta1, beta2, self.iter + 1)
        xp.multiply(diff, np.float32(1) - beta1, out=scratch)
        m *= beta1
        m += scratch
        xp.multiply(diff, diff, out=scratch)
        scratch *= np.float32(1) - beta2
        v *= beta2
        v += scratch
        xp.sqrt(v, out=scratch)
        scratch += np.float32(self.param.delta)
        xp.divide(m, scratch, out=scratch)
        xp.multiply(scratch, local_rate * correction, out=diff)
