"""RMSProp (Caffe's ``RMSPropSolver``): AdaGrad with a decaying mean of squared gradients in
place of their sum::

    H ← ρ·H + (1−ρ)·g²
    diff ← local_rate · g / (√H + δ)

with ρ = ``rms_decay`` (default 0.99, 0 ≤ ρ < 1) and δ = ``delta``; one history array per
parameter. Caffe refuses momentum.
"""

from __future__ import annotations

import numpy as np

from ..errors import SolverError
from .sgd import SGDSolver


class RMSPropSolver(SGDSolver):
    """``RMSPropSolver(path_or_param)`` as pycaffe's; ``history`` holds H per parameter."""

    def _check_param(self) -> None:
        super()._check_param()
        p = self.param
        if p.momentum != 0:
            raise SolverError(f"{self.source}: momentum cannot be used with RMSProp (got "
                              f"momentum: {p.momentum}); remove the momentum field")
        if not 0 <= p.rms_decay < 1:
            raise SolverError(f"{self.source}: rms_decay must be in [0, 1), got "
                              f"{p.rms_decay}")

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = self.history[param_id], self._scratch[param_id]
        decay = np.float32(self.param.rms_decay)
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        xp.multiply(diff, diff, out=scratch)
        scratch *= np.float32(1) - decay
        history *= decay
        history += scratch
        xp.sqrt(history, out=scratch)
        scratch += np.float32(self.param.delta)
        diff /= scratch
        diff *= local_rate
