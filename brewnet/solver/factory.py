"""Solvers by type name (Caffe's SolverRegistry): ``get_solver(path)`` reads the prototxt's
``type`` (default "SGD"; the legacy ``solver_type`` enum is upgraded when the file is read) and
builds pycaffe's class for that rule. The classes are names only: each is the one training
loop with its rule fixed, whatever ``type`` says, as pycaffe's ``SGDSolver(path)`` is."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..proto import caffe_pb2
from ..proto.positions import Node
from ..proto.textio import read_solver_located
from .solver import Solver


class SGDSolver(Solver):
    """``SGDSolver(path_or_param)`` as pycaffe's: the SGD rule (solver/rules/sgd.py). The
    other rules' classes derive from it, as in pycaffe."""

    rule_type = "SGD"


class NesterovSolver(SGDSolver):
    """``NesterovSolver(path_or_param)`` as pycaffe's (solver/rules/nesterov.py)."""

    rule_type = "Nesterov"


class AdaGradSolver(SGDSolver):
    """``AdaGradSolver(path_or_param)`` as pycaffe's (solver/rules/adagrad.py)."""

    rule_type = "AdaGrad"


class RMSPropSolver(SGDSolver):
    """``RMSPropSolver(path_or_param)`` as pycaffe's (solver/rules/rmsprop.py)."""

    rule_type = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    """``AdaDeltaSolver(path_or_param)`` as pycaffe's (solver/rules/adadelta.py)."""

    rule_type = "AdaDelta"


class AdamSolver(SGDSolver):
    """``AdamSolver(path_or_param)`` as pycaffe's (solver/rules/adam.py)."""

    rule_type = "Adam"


# pycaffe's class for each rule, by the name a prototxt's ``type`` gives.
SOLVER_CLASSES: dict[str, type[Solver]] = {
    cls.rule_type: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,
                                   AdaDeltaSolver, AdamSolver)}


def get_solver(param: str | os.PathLike | caffe_pb2.SolverParameter, *,
               source: str | os.PathLike | None = None,
               weights: Sequence[str] | None = None,
               allow_python_layers: bool = False, layout: Node | None = None) -> Solver:
    """pycaffe's ``get_solver``: the solver its ``type`` names, built from a prototxt path (or
    a SolverParameter, with ``source`` naming the file it came from and ``layout`` its field
    tree from ``read_solver_located``). The file is read once.
    ``weights`` replaces the solver's own ``weights`` list (see ``Solver``);
    ``allow_python_layers`` lets its nets run ``type: "Python"`` layers. An unknown ``type``
    is refused by the Solver's checks, at the field's line, as ``brewnet check`` reports it."""
    if not isinstance(param, caffe_pb2.SolverParameter):
        source = param
        param, layout = read_solver_located(source)
    cls = SOLVER_CLASSES.get(param.type, Solver)
    return cls(param, source=source, weights=weights, allow_python_layers=allow_python_layers,
               layout=layout)
