"""RMSProp (Caffe's ``RMSPropSolver``): AdaGrad with a decaying mean of squared gradients in
place of their sum::

    H ← ρ·H + (1−ρ)·g²
    diff ← local_rate · g / (√H + δ)

with ρ = ``rms_decay`` (default 0.99, 0 ≤ ρ < 1) and δ = ``delta``; one history array per
parameter, H. Caffe refuses momentum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...proto import caffe_pb2
from .rule import Report, UpdateRule, decaying_mean, local_rate, root_plus_delta

if TYPE_CHECKING:
    from ..solver import Solver


class RMSProp(UpdateRule):
    type_name = "RMSProp"
    slots = ("grad_sq_mean",)

    def validate(self, param: caffe_pb2.SolverParameter, report: Report) -> None:
        """Caffe's RMSPropSolver CHECKs: momentum == 0 and 0 ≤ rms_decay < 1."""
        if param.momentum != 0:
            report(f"momentum cannot be used with RMSProp (got momentum: {param.momentum}); "
                   "remove the momentum field", "momentum")
        if not 0 <= param.rms_decay < 1:
            report(f"rms_decay must be in [0, 1), got {param.rms_decay}", "rms_decay")

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        blob = solver.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = solver.state["grad_sq_mean"][param_id], solver.scratch[param_id]
        xp.multiply(diff, diff, out=scratch)
        decaying_mean(history, scratch, np.float32(solver.param.rms_decay))
        root_plus_delta(xp, history, solver.param.delta, out=scratch)
        diff /= scratch
        diff *= local_rate(solver, param_id, rate)
