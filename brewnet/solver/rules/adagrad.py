"""AdaGrad (Caffe's ``AdaGradSolver``): each weight's rate shrinks with the sum of its squared
gradients::

    H ← H + g²
    diff ← local_rate · g / (√H + δ)

with δ = ``delta`` (default 1e-8); one history array per parameter, H. Caffe refuses momentum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...proto import caffe_pb2
from .rule import Report, UpdateRule, local_rate, root_plus_delta

if TYPE_CHECKING:
    from ..solver import Solver


class AdaGrad(UpdateRule):
    type_name = "AdaGrad"
    slots = ("grad_sq_sum",)

    def validate(self, param: caffe_pb2.SolverParameter, report: Report) -> None:
        if param.momentum != 0:
            report(f"momentum cannot be used with AdaGrad (got momentum: {param.momentum}); "
                   "remove the momentum field", "momentum")

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        blob = solver.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = solver.state["grad_sq_sum"][param_id], solver.scratch[param_id]
        xp.multiply(diff, diff, out=scratch)
        history += scratch
        root_plus_delta(xp, history, solver.param.delta, out=scratch)
        diff /= scratch
        diff *= local_rate(solver, param_id, rate)
