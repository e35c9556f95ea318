"""Solvers: update rules, learning-rate schedules, the training loop, snapshots."""

from .factory import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)
from .solver import Solver, SolverAction

__all__ = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "NesterovSolver", "RMSPropSolver",
           "SGDSolver", "Solver", "SolverAction", "get_solver"]
