"""Nesterov's accelerated gradient (Caffe's ``NesterovSolver``): SGD's momentum history, but
the step looks ahead along it::

    V' ← μ·V + local_rate·g
    diff ← (1+μ)·V' − μ·V

with μ = ``momentum`` and local_rate = rate·lr_mult; one history array per parameter, as SGD.
"""

from __future__ import annotations

import numpy as np

from .sgd import SGDSolver


class NesterovSolver(SGDSolver):
    """``NesterovSolver(path_or_param)`` as pycaffe's; ``history`` holds V per parameter."""

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        history, scratch = self.history[param_id], self._scratch[param_id]
        momentum = np.float32(self.param.momentum)
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        xp.multiply(diff, local_rate, out=scratch)
        diff[...] = history  # g is used up: diff keeps the old V until the step is formed
        history *= momentum
        history += scratch
        xp.multiply(history, np.float32(1) + momentum, out=scratch)
        diff *= -momentum  # Caffe's axpby: (1+μ)·V' + (−μ)·V
        diff += scratch
