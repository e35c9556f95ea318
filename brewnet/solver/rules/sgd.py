"""Stochastic gradient descent with momentum (Caffe's ``SGDSolver``)::

    V ← μ·V + local_rate·g ;  diff ← V

with μ = ``momentum`` and local_rate = rate·lr_mult; one history array per parameter, the
velocity V. The Solver then applies ``w ← w − diff``.

Note the form: the learning rate multiplies the gradient *inside* the momentum sum, unlike
PyTorch's SGD (``v = μv + g; w −= lr·v``); the two differ whenever the rate changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .rule import UpdateRule, local_rate

if TYPE_CHECKING:
    from ..solver import Solver


class SGD(UpdateRule):
    """Caffe's SGD rule; plain SGD with L2 decay may take the compiled ``fused_step``."""

    type_name = "SGD"
    slots = ("velocity",)

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        """V ← μ·V + local_rate·g; diff ← V, with local_rate = rate·lr_mult."""
        blob = solver.net.learnable_params[param_id]
        history, scratch = solver.state["velocity"][param_id], solver.scratch[param_id]
        history *= np.float32(solver.param.momentum)
        blob.xp.multiply(blob.diff, local_rate(solver, param_id, rate), out=scratch)
        history += scratch
        blob.diff[...] = history

    def fused_step(self, solver: Solver, param_id: int, local_decay: Any, rate: float) -> None:
        """Regularize (L2), compute the step and apply it in one compiled pass
        (brewnet.kernels.sgd), bit-identical to ``regularize``, this rule and ``Net.update``."""
        from ...kernels.sgd import sgd_step  # imports numba: only when it is used
        blob = solver.net.learnable_params[param_id]
        sgd_step(blob.data, blob.diff, solver.state["velocity"][param_id],
                 np.float32(local_decay), np.float32(solver.param.momentum),
                 local_rate(solver, param_id, rate))
