"""pycaffe's multi-GPU object, ``caffe.NCCL(solver, uid)``, and its CPU counterpart
``caffe.MPI(solver)`` for scripts run under mpiexec. Both are a GradientSync, so BVLC's
python/train.py flow works unchanged::

    caffe.set_solver_count(n); caffe.set_solver_rank(rank)   # before building the solver
    solver = caffe.SGDSolver(path)
    sync = caffe.NCCL(solver, uid)    # or caffe.MPI(solver) under mpiexec
    sync.bcast()
    solver.add_callback(sync)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(sync)
    solver.step(solver.param.max_iter)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import backend
from .sync import GradientSync

if TYPE_CHECKING:
    from ..solver import Solver


class NCCL(GradientSync):
    """Caffe's NCCL object: ``uid`` from ``NCCL.new_uid()`` in the parent process; the
    clique has ``caffe.solver_count()`` ranks, this one ``caffe.solver_rank()``, on the
    current device (``caffe.set_device``)."""

    def __init__(self, solver: Solver, uid: bytes):
        from .nccl import NcclComm
        super().__init__(solver, NcclComm(uid, backend.solver_count(), backend.solver_rank()))

    @staticmethod
    def new_uid() -> bytes:
        from .nccl import new_uid
        return new_uid()


class MPI(GradientSync):
    """The MPI counterpart of ``NCCL`` for CPU ranks started by mpiexec: the ranks of
    MPI_COMM_WORLD (call ``set_solver_count``/``set_solver_rank`` with its size and rank
    before building the solver, so Data layers share out their records)."""

    def __init__(self, solver: Solver):
        from .mpi import MpiComm
        super().__init__(solver, MpiComm())
