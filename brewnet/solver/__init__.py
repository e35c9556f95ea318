"""Solvers: update rules, learning-rate schedules, the training loop, snapshots."""

from .adadelta import AdaDeltaSolver
from .adagrad import AdaGradSolver
from .adam import AdamSolver
from .factory import get_solver
from .nesterov import NesterovSolver
from .rmsprop import RMSPropSolver
from .sgd import SGDSolver
from .solver import Solver, SolverAction

__all__ = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "NesterovSolver", "RMSPropSolver",
           "SGDSolver", "Solver", "SolverAction", "get_solver"]
