"""Solvers by type name (Caffe's SolverRegistry): ``get_solver(path)`` reads the prototxt's
``type`` (default "SGD"; the legacy ``solver_type`` enum is upgraded when the file is read) and
builds that class."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import SolverError
from ..proto import caffe_pb2
from ..proto.textio import read_solver
from .sgd import SGDSolver
from .solver import Solver

# Caffe's registered solver types; a name mapped to None is known but not built yet.
SOLVER_TYPES: dict[str, type[Solver] | None] = {
    "SGD": SGDSolver,
    "Nesterov": None,
    "AdaGrad": None,
    "RMSProp": None,
    "AdaDelta": None,
    "Adam": None,
}


def solver_class(type_name: str) -> type[Solver]:
    """The class registered for ``type_name``; SolverError for unknown or unbuilt types."""
    if type_name not in SOLVER_TYPES:
        raise SolverError(f"unknown solver type '{type_name}'; known types: "
                          + ", ".join(SOLVER_TYPES))
    cls = SOLVER_TYPES[type_name]
    if cls is None:
        raise SolverError(f"solver type {type_name} is not implemented yet; use type: \"SGD\"")
    return cls


def get_solver(param: str | os.PathLike | caffe_pb2.SolverParameter, *,
               source: str | os.PathLike | None = None,
               weights: Sequence[str] | None = None) -> Solver:
    """pycaffe's ``get_solver``: the solver its ``type`` names, built from a prototxt path (or
    a SolverParameter, with ``source`` naming the file it came from). The file is read once.
    ``weights`` replaces the solver's own ``weights`` list (see ``Solver``)."""
    if not isinstance(param, caffe_pb2.SolverParameter):
        source = param
        param = read_solver(source)
    where = os.fspath(source) if source is not None else "<SolverParameter>"
    try:
        cls = solver_class(param.type)
    except SolverError as e:
        raise SolverError(f"{where}: {e}") from None
    return cls(param, source=source, weights=weights)
