"""What an update rule is (one of Caffe's SGDSolver family): the names of its history slots,
the settings it refuses, and its formula. The training loop (``Solver``) composes one; the
Solver and ``brewnet check`` both validate through ``validate`` (solver/checks.py), so check
finds everything training would refuse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

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
