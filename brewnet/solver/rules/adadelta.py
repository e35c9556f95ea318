"""AdaDelta (Caffe's ``AdaDeltaSolver``): the step is scaled by the ratio of decaying RMS of
past updates to that of past gradients, so ``base_lr`` is usually 1::

    Hg ← μ·Hg + (1−μ)·g²
    u  ← g · √((Hu + δ) / (Hg + δ))
    Hu ← μ·Hu + (1−μ)·u²
    diff ← local_rate · u

with μ = ``momentum`` as the decay and δ = ``delta``. Two history slots, Hg and Hu, in Caffe's
SolverState order: every parameter's Hg first, then every parameter's Hu.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...blob import Blob
from .rule import UpdateRule, decaying_mean, local_rate

if TYPE_CHECKING:
    from ..solver import Solver


class AdaDelta(UpdateRule):
    type_name = "AdaDelta"
    slots = ("grad_sq", "update_sq")

    def setup(self, params: Sequence[Blob]) -> None:
        # The ratio needs both sums with δ at once: a second buffer (Caffe's update_).
        self._ratio = [p.xp.empty_like(p.data) for p in params]

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        blob = solver.net.learnable_params[param_id]
        xp, diff = blob.xp, blob.diff
        grad_sq = solver.state["grad_sq"][param_id]
        update_sq = solver.state["update_sq"][param_id]
        scratch, ratio = solver.scratch[param_id], self._ratio[param_id]
        momentum = np.float32(solver.param.momentum)
        delta = np.float32(solver.param.delta)
        xp.multiply(diff, diff, out=scratch)
        decaying_mean(grad_sq, scratch, momentum)
        xp.add(update_sq, delta, out=ratio)
        xp.add(grad_sq, delta, out=scratch)
        ratio /= scratch
        xp.sqrt(ratio, out=ratio)
        diff *= ratio  # diff now holds u
        xp.multiply(diff, diff, out=scratch)
        decaying_mean(update_sq, scratch, momentum)
        diff *= local_rate(solver, param_id, rate)
