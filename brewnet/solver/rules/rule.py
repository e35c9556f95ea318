"""What an update rule is (one of Caffe's SGDSolver family): the names of its history slots,
the settings it refuses, and its formula. The training loop (``Solver``) composes one; the
Solver and ``brewnet check`` both validate through ``validate`` (solver/checks.py), so check
finds everything training would refuse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ...blob import Blob
from ...proto import caffe_pb2

if TYPE_CHECKING:
    from ..solver import Solver


class Report(Protocol):
    """``report(message, *fields)``: one problem, located at the first of ``fields`` that the
    solver text sets (solver/checks.py renders it as file:line:col)."""

    def __call__(self, message: str, *fields: str, warning: bool = False) -> None: ...


class UpdateRule:
    """One rule, registered by the solver ``type`` that selects it (``type_name``).

    ``slots`` names its history arrays per learnable parameter, in Caffe's SolverState order:
    a .solverstate holds every parameter's first slot, then every parameter's second. The
    Solver allocates them and hands them to the rule by name (``solver.state[slot][i]``).
    """

    type_name: ClassVar[str]
    slots: ClassVar[tuple[str, ...]]

    def validate(self, param: caffe_pb2.SolverParameter, report: Report) -> None:
        """Report every setting this rule cannot train with (Caffe's constructor CHECKs),
        each at its field. Most rules accept any setting."""

    def setup(self, params: Sequence[Blob]) -> None:
        """Allocate what the formula needs besides its history and the solver's scratch
        (most rules need nothing)."""

    def compute_update_value(self, solver: Solver, param_id: int, rate: float) -> None:
        """Turn learnable parameter ``param_id``'s regularized gradient (its diff) into the
        step that ``w ← w − diff`` applies, advancing the rule's history."""
        raise NotImplementedError(f"{type(self).__name__} has no update formula")


# The formula pieces several rules share, each one line of Caffe's update; float32 throughout.

def local_rate(solver: Solver, param_id: int, rate: float) -> np.float32:
    """Caffe's ``local_rate``: the schedule's rate times parameter ``param_id``'s lr_mult."""
    return np.float32(rate) * np.float32(solver.net.params_lr[param_id])


def decaying_mean(history: Any, value: Any, decay: np.float32) -> None:
    """H ← ρ·H + (1−ρ)·x in place (the decaying means of RMSProp, AdaDelta and Adam);
    ``value`` holds x and is left holding (1−ρ)·x."""
    value *= np.float32(1) - decay
    history *= decay
    history += value


def root_plus_delta(xp: Any, history: Any, delta: float, out: Any) -> None:
    """out ← √H + δ: the denominator of AdaGrad, RMSProp and Adam (δ keeps it off zero)."""
    xp.sqrt(history, out=out)
    out += np.float32(delta)
