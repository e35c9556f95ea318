"""Stochastic gradient descent with momentum (Caffe's ``SGDSolver``), and the update machinery
the other rules (Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) reuse by overriding only
``compute_update_value`` and ``history_slots``.

Per learnable parameter, with ``rate`` from the lr policy::

    g ← clip(g)              (global L2 norm over all parameters; before normalization)
    g ← g / iter_size
    g ← g + λ·w  (L2)  or  g + λ·sign(w)  (L1),   λ = weight_decay · decay_mult
    V ← μ·V + (rate·lr_mult)·g ;  diff ← V          (the SGD rule)
    w ← w − diff

Note the form: the learning rate multiplies the gradient *inside* the momentum sum, unlike
PyTorch's SGD (``v = μv + g; w −= lr·v``); the two differ whenever the rate changes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import kernels
from ..log import log
from .gradients import check_regularization, clip_gradients, normalize, regularize
from .lr_policy import learning_rate
from .report import num
from .solver import Solver


class SGDSolver(Solver):
    """``SGDSolver(path_or_param)`` as pycaffe's; ``history`` holds one momentum array V per
    learnable parameter."""

    history_slots: ClassVar[int] = 1

    def _check_param(self) -> None:
        super()._check_param()
        check_regularization(self.param.regularization_type)

    def _pre_solve(self) -> None:
        super()._pre_solve()
        # Scratch for the regularizer and the update, one per parameter (Caffe's temp_).
        self._scratch = [p.xp.empty_like(p.data) for p in self.net.learnable_params]

    def get_learning_rate(self) -> float:
        """Caffe's GetLearningRate (for ``multistep`` it may advance ``current_step``)."""
        return learning_rate(self.param, self.iter, self)

    @property
    def lr(self) -> float:
        """pycaffe's ``solver.lr``: the current rate, with GetLearningRate's side effect."""
        return self.get_learning_rate()

    def apply_update(self) -> None:
        """clip → normalize → regularize → compute the step → w −= step → ``iter += 1``."""
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
                self._fused_step(i, local_decay, rate)
                continue
            regularize(blob, local_decay, p.regularization_type, self._scratch[i])
            self.compute_update_value(i, rate)
        if not fused:
            self.net.update()
        self.iter += 1

    def _fused_step_applies(self) -> bool:
        """Plain SGD with L2 decay on NumPy arrays takes the compiled one-pass step
        (brewnet.kernels.sgd), which also applies the update (``Net.update``'s w -= diff)."""
        return (type(self).compute_update_value is SGDSolver.compute_update_value
                and self.param.regularization_type == "L2"
                and all(kernels.enabled(b.xp) and b.data.flags.c_contiguous
                        and b.diff.flags.c_contiguous and v.flags.c_contiguous
                        for b, v in zip(self.net.learnable_params, self.history, strict=True)))

    def _fused_step(self, param_id: int, local_decay, rate: float) -> None:
        from ..kernels.sgd import sgd_step  # imports numba: only when it is used
        blob = self.net.learnable_params[param_id]
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        sgd_step(blob.data, blob.diff, self.history[param_id], np.float32(local_decay),
                 np.float32(self.param.momentum), local_rate)

    def compute_update_value(self, param_id: int, rate: float) -> None:
        """V ← μ·V + local_rate·g; diff ← V, with local_rate = rate·lr_mult."""
        blob = self.net.learnable_params[param_id]
        history, scratch = self.history[param_id], self._scratch[param_id]
        local_rate = np.float32(rate) * np.float32(self.net.params_lr[param_id])
        history *= np.float32(self.param.momentum)
        blob.xp.multiply(blob.diff, local_rate, out=scratch)
        history += scratch
        blob.diff[...] = history
