"""Nesterov's accelerated gradient (Caffe's ``NesterovSolver``): SGD's momentum history, but
the step looks ahead along it::

    V' ← μ·V + local_rate·g
    diff ← (1+μ)·V' − μ·V

with μ = ``momentum`` and local_rate = rate·lr_mult; one history array per parameter, the
velocity V, as SGD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .rule import UpdateRule, local_rate

if TYPE_CHECKING:
    from ..solver import Solver


class Nesterov(UpdateRule):
    type_name = "Nesterov"
    slots = ("velocity",)

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        blob = solver.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = solver.state["velocity"][param_id], solver.scratch[param_id]
        momentum = np.float32(solver.param.momentum)
        xp.multiply(diff, local_rate(solver, param_id, rate), out=scratch)
        diff[...] = history  # g is used up: diff keeps the old V until the step is formed
        history *= momentum
        history += scratch
        xp.multiply(history, np.float32(1) + momentum, out=scratch)
        diff *= -momentum  # Caffe's axpby: (1+μ)·V' + (−μ)·V
        diff += scratch
