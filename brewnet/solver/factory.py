"""Solvers by type name (Caffe's SolverRegistry): ``get_solver(path)`` reads the prototxt's
``type`` (default "SGD"; the legacy ``solver_type`` enum is upgraded when the file is read) and
builds that class."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import SolverError
from ..proto import caffe_pb2
from ..proto.textio import read_solver
from .adadelta import AdaDeltaSolver
from .adagrad import AdaGradSolver
from .adam import AdamSolver
from .nesterov import NesterovSolver
from .rmsprop import RMSPropSolver
from .sgd import SGDSolver
from .solver import Solver

# Caffe's registered solver types, by the name a prototxt's ``type`` gives.
SOLVER_TYPES: dict[str, type[Solver]] = {
    "SGD": SGDSolver,
    "Nesterov": NesterovSolver,
    "AdaGrad": AdaGradSolver,
    "RMSProp": RMSPropSolver,
    "AdaDelta": AdaDeltaSolver,
    "Adam": AdamSolver,
}


def solver_class(type_name: str) -> type[Solver]:
    """The class registered for ``type_name``; SolverError for unknown types."""
    if type_name not in SOLVER_TYPES:
        raise SolverError(f"unknown solver type '{type_name}'; known types: "
                          + ", ".join(SOLVER_TYPES))
    return SOLVER_TYPES[type_name]


def get_solver(param: str | os.PathLike | caffe_pb2.SolverParameter, *,
               source: str | os.PathLike | None = None,
               weights: Sequence[str] | None = None,
               allow_python_layers: bool = False) -> Solver:
    """pycaffe's ``get_solver``: the solver its ``type`` names, built from a prototxt path (or
    a SolverParameter, with ``source`` naming the file it came from). The file is read once.
    ``weights`` replaces the solver's own ``weights`` list (see ``Solver``);
    ``allow_python_layers`` lets its nets run ``type: "Python"`` layers."""
    if not isinstance(param, caffe_pb2.SolverParameter):
        source = param
        param = read_solver(source)
    where = os.fspath(source) if source is not None else "<SolverParameter>"
    try:
        cls = solver_class(param.type)
    except SolverError as e:
        raise SolverError(f"{where}: {e}") from None
    return cls(param, source=source, weights=weights, allow_python_layers=allow_python_layers)
