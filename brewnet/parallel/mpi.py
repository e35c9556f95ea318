"""The MPI engine (mpi4py), for CPU processes on one or many machines: ``mpiexec -n 4 brewnet
solve ...``. ``pip install 'brewnet[mpi]'`` brings mpi4py and an MPI (MPICH's wheel)."""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn

import numpy as np

from ..errors import BrewnetError

# Seconds a failing rank waits between printing its error and MPI_Abort.
ABORT_GRACE_S = 0.2


def import_mpi() -> Any:
    """mpi4py's MPI module, or a BrewnetError saying how to install it."""
    try:
        from mpi4py import MPI  # optional dependency
    except ImportError as e:
        raise BrewnetError(f"several ranks need mpi4py, which cannot be imported ({e}): pip "
                           "install 'brewnet[mpi]'") from None
    return MPI


class _Request:
    def __init__(self, request: Any):
        self._request = request

    def wait(self) -> None:
        self._request.Wait()

    def test(self) -> None:
        self._request.Test()


class MpiComm:
    """A Communicator over an MPI communicator (COMM_WORLD unless given): sums in place with
    ``MPI_Allreduce``/``MPI_Iallreduce``, broadcasts from rank 0, ``MPI_Abort`` on failure."""

    engine = "MPI"

    def __init__(self, comm: Any = None):
        self._mpi = import_mpi()
        self._comm = comm if comm is not None else self._mpi.COMM_WORLD
        self.rank = int(self._comm.Get_rank())
        self.size = int(self._comm.Get_size())

    def allreduce(self, array: np.ndarray) -> None:
        self._comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)

    def start_allreduce(self, array: np.ndarray) -> _Request:
        return _Request(self._comm.Iallreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM))

    def bcast(self, array: np.ndarray) -> None:
        self._comm.Bcast(array, root=0)

    def sum_values(self, values: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(values).copy()
        self.allreduce(out)
        return out

    def bcast_values(self, values: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(values).copy()
        self.bcast(out)
        return out

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int) -> NoReturn:
        """MPI_Abort (mpiexec then ends every rank); exit even if it returns, as it may.
        First a pause for mpiexec to forward what this rank just printed (the error naming
        it): MPI_Abort ends the job at once, and in one run of the fault tests the line never
        reached mpiexec's output."""
        time.sleep(ABORT_GRACE_S)
        try:
            self._comm.Abort(code)
        finally:
            os._exit(code)
