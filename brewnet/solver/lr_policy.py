"""Learning-rate schedules (Caffe's ``SGDSolver::GetLearningRate``), kept apart from the
update rules that consume the rate.

``iter`` is the number of updates done so far. Arithmetic follows Caffe's C++ types: ``float``
where Caffe computes in ``Dtype``, ``double`` where C++ promotes (``pow(float, int)``), and the
result rounded to float32, so rates print and apply exactly as Caffe's do.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import SolverError
from ..log import log
from ..proto import caffe_pb2

LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

_f32 = np.float32


class StepState(Protocol):
    """Whatever carries ``current_step`` (the solver), the one piece of schedule state that a
    .solverstate keeps."""

    current_step: int


def _unknown_policy(policy: str) -> SolverError:
    return SolverError(f"unknown lr_policy '{policy}'; valid policies: " + ", ".join(LR_POLICIES))


def learning_rate(param: caffe_pb2.SolverParameter, iter: int, state: StepState) -> float:
    """The rate for update number ``iter``; ``step`` and ``multistep`` update
    ``state.current_step`` as Caffe does (multistep by at most one per call, with a log line)."""
    policy = param.lr_policy
    base_lr, gamma, power = _f32(param.base_lr), _f32(param.gamma), _f32(param.power)
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        state.current_step = iter // param.stepsize
        rate = _f32(float(base_lr) * float(gamma) ** state.current_step)
    elif policy == "exp":
        rate = _f32(float(base_lr) * float(gamma) ** iter)
    elif policy == "inv":
        rate = base_lr * (_f32(1) + gamma * _f32(iter)) ** (-power)
    elif policy == "multistep":
        steps = param.stepvalue
        if state.current_step < len(steps) and iter >= steps[state.current_step]:
            state.current_step += 1
            log.info(f"MultiStep Status: Iteration {iter}, step = {state.current_step}")
        rate = _f32(float(base_lr) * float(gamma) ** state.current_step)
    elif policy == "poly":
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN/inf, as C++ powf gives
            rate = base_lr * (_f32(1) - _f32(iter) / _f32(param.max_iter)) ** power
    elif policy == "sigmoid":
        with np.errstate(over="ignore"):  # exp overflows to inf: the rate is then 0
            z = np.exp(-gamma * (_f32(iter) - _f32(param.stepsize)))
        rate = base_lr * (_f32(1) / (_f32(1) + z))
    else:
        raise _unknown_policy(policy)
    return float(_f32(rate))
