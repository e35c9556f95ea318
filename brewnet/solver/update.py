"""Caffe's ``ApplyUpdate``, the part of a training step after the gradients are in: the
learning rate from the schedule, clipping, normalization, regularization, the update rule's
step and ``w −= diff``. Mixed into :class:`brewnet.solver.Solver`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from ..log import log
from ..net import Net
from ..proto import caffe_pb2
from .gradients import clip_gradients, normalize, regularize
from .lr_policy import learning_rate
from .report import num
from .rules import SGD
from .rules.rule import UpdateRule


class UpdateStep:
    """Needs the Solver's ``param``, ``net``, ``iter``, ``rule``, ``history`` and ``scratch``."""

    param: caffe_pb2.SolverParameter
    net: Net
    iter: int
    rule: UpdateRule
    history: list[Any]
    scratch: list[Any]
    last_rate: float | None

    def get_learning_rate(self) -> float:
        """Caffe's GetLearningRate (for ``multistep`` it may advance ``current_step``)."""
        return learning_rate(self.param, self.iter, self)

    @property
    def lr(self) -> float:
        """pycaffe's ``solver.lr``: the current rate, with GetLearningRate's side effect."""
        return self.get_learning_rate()

    def apply_update(self) -> None:
        """Turn the accumulated gradients into an update, apply it and count it. Per learnable
        parameter, with ``rate`` from the lr policy (Caffe's ``SGDSolver::ApplyUpdate``)::

            g ← clip(g)              (global L2 norm over all parameters; before normalization)
            g ← g / iter_size
            g ← g + λ·w  (L2)  or  g + λ·sign(w)  (L1),   λ = weight_decay · decay_mult
            diff ← the rule's step for g
            w ← w − diff
        """
        p = self.param
        rate = self.last_rate = self.get_learning_rate()
        if p.display and self.iter % p.display == 0:
            log.info(f"Iteration {self.iter}, lr = {num(rate)}")
        params = self.net.learnable_params
        clip_gradients(params, p.clip_gradients)
        weight_decay = np.float32(p.weight_decay)
        fused = self._fused_step_applies()
        for i, blob in enumerate(params):
            normalize(blob, p.iter_size)
            local_decay = weight_decay * np.float32(self.net.params_weight_decay[i])
            if fused:
                self.rule.fused_step(self, i, local_decay, rate)
                continue
            regularize(blob, local_decay, p.regularization_type, self.scratch[i])
            self.rule.compute_update_value(self, i, rate)
        if not fused:
            self.net.update()
        self.iter += 1

    def _fused_step_applies(self) -> bool:
        """Plain SGD with L2 decay on NumPy arrays takes the compiled one-pass step
        (brewnet.kernels.sgd), which also applies the update (``Net.update``'s w -= diff)."""
        return (isinstance(self.rule, SGD)
                and self.param.regularization_type == "L2"
                and all(kernels.enabled(b.xp) and b.data.flags.c_contiguous
                        and b.diff.flags.c_contiguous and v.flags.c_contiguous
                        for b, v in zip(self.net.learnable_params, self.history, strict=True)))
