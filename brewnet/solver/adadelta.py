"""AdaDelta (Caffe's ``AdaDeltaSolver``): the step is scaled by the ratio of decaying RMS of
past updates to that of past gradients, so ``base_lr`` is usually 1::

    Hg ← μ·Hg + (1−μ)·g²
    u  ← g · √((Hu + δ) / (Hg + δ))
    Hu ← μ·Hu + (1−μ)·u²
    diff ← local_rate · u

with μ = ``momentum`` as the decay and δ = ``delta``. Two history arrays per parameter, in
Caffe's SolverState order: every parameter's Hg first, then every parameter's Hu.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .sgd import SGDSolver


class AdaDeltaSolver(SGDSolver):
    """``AdaDeltaSolver(path_or_param)`` as pycaffe's; ``history`` holds Hg for every
    parameter, then Hu for every parameter."""

    history_slots: ClassVar[int] = 2

    def _pre_solve(self) -> None:
        super()._pre_solve()
        # The ratio needs both sums with δ at once: a second buffer (Caffe's update_).
        self._ratio = [p.xp.empty_like(p.data) for p in self.net.learnable_params]

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        n = len(self.net.learnable_params)
        grad_sq, update_sq = self.history[param_id], self.history[n + param_id]
        scratch, ratio = self._scratch[param_id], self._ratio[param_id]
        momentum = np.float32(self.param.momentum)
        keep = np.float32(1) - momentum
        delta = np.float32(self.param.delta)
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        xp.multiply(diff, diff, out=scratch)
        scratch *= keep
        grad_sq *= momentum
        grad_sq += scratch
        xp.add(update_sq, delta, out=ratio)
        xp.add(grad_sq, delta, out=scratch)
        ratio /= scratch
        xp.sqrt(ratio, out=ratio)
        diff *= ratio  # diff now holds u
        xp.multiply(diff, diff, out=scratch)
        scratch *= keep
        update_sq *= momentum
        update_sq += scratch
        diff *= local_rate
