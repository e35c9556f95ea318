"""Adam (Caffe's ``AdamSolver``): bias-corrected decaying means of the gradient and of its
square::

    m ← β1·m + (1−β1)·g
    v ← β2·v + (1−β2)·g²
    diff ← local_rate · √(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε),   t = iter + 1

with β1 = ``momentum``, β2 = ``momentum2`` (default 0.999) and ε = ``delta``. Two history
slots, m and v, in Caffe's SolverState order: every parameter's m, then every v. Weight decay
is added to g beforehand (coupled, not AdamW).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ...proto import caffe_pb2
from .rule import Report, UpdateRule, decaying_mean, local_rate, root_plus_delta

if TYPE_CHECKING:
    from ..solver import Solver


def bias_correction(beta1: np.float32, beta2: np.float32, t: int) -> np.float32:
    """√(1−β2ᵗ)/(1−β1ᵗ). Caffe's ``pow(beta, t)`` with an int exponent computes in double;
    the result is stored as a float."""
    b1, b2 = float(beta1), float(beta2)
    return np.float32(math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))


class Adam(UpdateRule):
    type_name = "Adam"
    slots = ("m", "v")

    def validate(self, param: caffe_pb2.SolverParameter, report: Report) -> None:
        """β1 = 1 divides by zero and β2 > 1 takes the root of a negative number in the bias
        correction: refuse them before training rather than at the first update."""
        for field, name in (("momentum", "beta1"), ("momentum2", "beta2")):
            value = getattr(param, field)
            if not 0 <= value < 1:
                report(f"Adam's {field} ({name}) must be in [0, 1), got {value}", field)

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        blob = solver.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        m, v = solver.state["m"][param_id], solver.state["v"][param_id]
        scratch = solver.scratch[param_id]
        beta1, beta2 = np.float32(solver.param.momentum), np.float32(solver.param.momentum2)
        correction = bias_correction(beta1, beta2, solver.iter + 1)
        xp.multiply(diff, np.float32(1) - beta1, out=scratch)
        m *= beta1
        m += scratch
        xp.multiply(diff, diff, out=scratch)
        decaying_mean(v, scratch, beta2)
        root_plus_delta(xp, v, solver.param.delta, out=scratch)
        xp.divide(m, scratch, out=scratch)
        xp.multiply(scratch, local_rate(solver, param_id, rate) * correction, out=diff)
