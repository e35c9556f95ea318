"""The communicator: what data-parallel training asks of an engine (MPI on CPUs, NCCL on
GPUs), and the single-process one every solver holds by default.

Arrays passed to ``allreduce``/``start_allreduce``/``bcast`` live where the engine works
(NumPy for MPI, CuPy for NCCL) and are reduced in place; ``sum_values``/``bcast_values`` take
small host arrays (a loss, flags, the iteration) whatever the engine.
"""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

import numpy as np


class Pending(Protocol):
    """A reduction started by ``start_allreduce``; ``wait()`` returns once it is complete;
    ``test()`` lets it progress without blocking (MPI progresses only inside its calls)."""

    def wait(self) -> None: ...

    def test(self) -> None: ...


class Communicator(Protocol):
    """``rank`` of ``size`` processes training one model; rank 0 is the root."""

    rank: int
    size: int
    engine: str  # "single", "MPI" or "NCCL", for log lines

    def allreduce(self, array: Any) -> None:
        """Sum ``array`` over the ranks, in place."""

    def start_allreduce(self, array: Any) -> Pending:
        """Begin summing ``array`` in place without waiting (layer-wise reduction)."""

    def bcast(self, array: Any) -> None:
        """Overwrite ``array`` with rank 0's, in place."""

    def sum_values(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of a small host array over the ranks."""

    def bcast_values(self, values: np.ndarray) -> np.ndarray:
        """Rank 0's copy of a small host array."""

    def barrier(self) -> None:
        """Return once every rank has called it."""

    def abort(self, code: int) -> NoReturn:
        """End every rank of the job now (a rank failed)."""


class _Done:
    def wait(self) -> None:
        """Nothing is outstanding in one process."""

    def test(self) -> None:
        """Nothing to progress."""


class SingleProcess:
    """One process: every collective is the identity, so a solver holding it trains exactly
    as it did before communicators existed."""

    rank = 0
    size = 1
    engine = "single"

    def allreduce(self, array: Any) -> None:
        """The sum over one rank is the array itself."""

    def start_allreduce(self, array: Any) -> Pending:
        return _Done()

    def bcast(self, array: Any) -> None:
        """Rank 0's array is this one."""

    def sum_values(self, values: np.ndarray) -> np.ndarray:
        return values

    def bcast_values(self, values: np.ndarray) -> np.ndarray:
        return values

    def barrier(self) -> None:
        """Nobody to wait for."""

    def abort(self, code: int) -> NoReturn:
        raise SystemExit(code)


SINGLE = SingleProcess()
