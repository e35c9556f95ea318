"""The NCCL engine (CuPy's ``cupy.cuda.nccl``), for one process per GPU: ``brewnet solve
--gpu 0,1`` (launch.py starts the processes) or ``mpiexec -n 2 brewnet solve --gpu all``
(each rank takes the GPU of its local rank; the unique id travels by MPI broadcast).

Collectives are queued on one CUDA stream of their own, after the work already queued on the
current stream, as Caffe's NCCL class does; ``wait`` makes the current stream wait for them.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import numpy as np

from ..errors import BrewnetError

UID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


def nccl_module() -> Any | None:
    """``cupy.cuda.nccl`` when CuPy, a CUDA device and NCCL are all usable, else None."""
    from .. import backend
    cp = backend.cupy_or_none()
    if cp is None:
        return None
    try:
        from cupy.cuda import nccl  # optional dependency
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def require_nccl() -> Any:
    """``cupy.cuda.nccl``, or a one-line BrewnetError saying what is missing."""
    nccl = nccl_module()
    if nccl is None:
        raise BrewnetError("training on several GPUs needs CuPy with NCCL and CUDA devices "
                           "(pip install 'brewnet[gpu]'; CuPy's NCCL comes with "
                           "cupy-cuda12x), or omit --gpu to train on the CPU")
    return nccl


def new_uid() -> bytes:
    """A fresh NCCL unique id, as the bytes pycaffe's ``NCCL.new_uid()`` returns."""
    uid = require_nccl().get_unique_id()
    return bytes(uid) if isinstance(uid, bytes) else bytes(int(b) & 0xFF for b in uid)


def uid_from_hex(text: str) -> bytes:
    """An id passed between processes as hex text (launch.py's environment variable)."""
    try:
        uid = bytes.fromhex(text)
    except ValueError:
        uid = b""
    if len(uid) != UID_BYTES:
        raise BrewnetError(f"BREWNET_NCCL_UID must be {UID_BYTES} bytes as hex; got "
                           f"{len(text)} characters")
    return uid


class _Event:
    def __init__(self, event: Any):
        self._event = event

    def wait(self) -> None:
        import cupy
        cupy.cuda.get_current_stream().wait_event(self._event)

    def test(self) -> None:
        """The GPU progresses NCCL by itself."""


class NcclComm:
    """A Communicator over an NCCL clique of ``size`` processes, one GPU each; the device
    must be selected before it is made (ncclCommInitRank binds the current device)."""

    engine = "NCCL"

    def __init__(self, uid: bytes, size: int, rank: int):
        import cupy
        self._nccl = require_nccl()
        self._cp = cupy
        self.rank, self.size = int(rank), int(size)
        try:
            self._comm = self._nccl.NcclCommunicator(self.size, uid, self.rank)
        except TypeError:  # CuPy before 13 takes the id as a tuple of signed chars
            signed = tuple(b - 256 if b > 127 else b for b in uid)
            self._comm = self._nccl.NcclCommunicator(self.size, signed, self.rank)
        self._stream = cupy.cuda.Stream(non_blocking=True)

    def _kind(self, array: Any) -> int:
        kinds = {np.dtype(np.float32): self._nccl.NCCL_FLOAT32,
                 np.dtype(np.float64): self._nccl.NCCL_FLOAT64,
                 np.dtype(np.int64): self._nccl.NCCL_INT64}
        if array.dtype not in kinds or not array.flags.c_contiguous:
            raise BrewnetError(f"NCCL: cannot exchange a {array.dtype} array that is not "
                               "contiguous float32/float64/int64")
        return kinds[array.dtype]

    def _after_current(self) -> None:
        """Make the collective stream start after what the current stream has queued."""
        self._stream.wait_event(self._cp.cuda.get_current_stream().record())

    def start_allreduce(self, array: Any) -> _Event:
        self._after_current()
        self._comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._kind(array),
                             self._nccl.NCCL_SUM, self._stream.ptr)
        return _Event(self._stream.record())

    def allreduce(self, array: Any) -> None:
        self.start_allreduce(array).wait()

    def bcast(self, array: Any) -> None:
        self._after_current()
        self._comm.bcast(array.data.ptr, array.size, self._kind(array), 0, self._stream.ptr)
        _Event(self._stream.record()).wait()

    def sum_values(self, values: np.ndarray) -> np.ndarray:
        device = self._cp.asarray(np.ascontiguousarray(values))
        self.allreduce(device)
        return self._cp.asnumpy(device)

    def bcast_values(self, values: np.ndarray) -> np.ndarray:
        device = self._cp.asarray(np.ascontiguousarray(values))
        self.bcast(device)
        return self._cp.asnumpy(device)

    def barrier(self) -> None:
        self.sum_values(np.zeros(1, np.float32))

    def abort(self, code: int) -> NoReturn:
        """Abort the clique (peers blocked in a collective return with an error), then exit
        at once: the launcher or mpiexec ends the other ranks."""
        try:
            self._comm.abort()
        finally:
            os._exit(code)
