"""AdaGrad (Caffe's ``AdaGradSolver``): each weight's rate shrinks with the sum of its squared
gradients::

    H ← H + g²
    diff ← local_rate · g / (√H + δ)

with δ = ``delta`` (default 1e-8); one history array per parameter. Caffe refuses momentum.
"""

from __future__ import annotations

import numpy as np

from ..errors import SolverError
from .sgd import SGDSolver


class AdaGradSolver(SGDSolver):
    """``AdaGradSolver(path_or_param)`` as pycaffe's; ``history`` holds H per parameter."""

    def _check_param(self) -> None:
        super()._check_param()
        if self.param.momentum != 0:
            raise SolverError(f"{self.source}: momentum cannot be used with AdaGrad (got "
                              f"momentum: {self.param.momentum}); remove the momentum field")

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = self.history[param_id], self._scratch[param_id]
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        xp.multiply(diff, diff, out=scratch)
        history += scratch
        xp.sqrt(history, out=scratch)
        scratch += np.float32(self.param.delta)
        diff /= scratch
        diff *= local_rate
