"""Solvers: update rules, learning-rate schedules, the training loop, snapshots."""

from .factory import get_solver
from .sgd import SGDSolver
from .solver import Solver, SolverAction

__all__ = ["Solver", "SGDSolver", "SolverAction", "get_solver"]
