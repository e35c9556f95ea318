"""The array module (NumPy or CuPy) and the global compute mode, as pycaffe's set_mode_*.

Layer code never imports cupy: it asks ``get_array_module(array)`` for ``xp`` so one body
serves both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_state = {"mode": "cpu", "device": 0}
# Caffe's multi-GPU globals (pycaffe's python/train.py sets them): how many solvers train
# together and which one this process is; Data layers built afterwards share out their records.
_parallel = {"solver_count": 1, "solver_rank": 0, "multiprocess": False}


def cupy_or_none() -> Any:
    """The cupy module when it is installed and a device is usable, else None."""
    try:
        import cupy  # optional dependency

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # ImportError, or CUDA present but no device
        return None


def get_array_module(*arrays: Any) -> Any:
    """numpy, or cupy when any of ``arrays`` lives on a GPU."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return np


def set_mode_cpu() -> None:
    _state["mode"] = "cpu"


def set_mode_gpu() -> None:
    from .errors import BrewnetError
    if cupy_or_none() is None:
        raise BrewnetError("GPU mode needs CuPy and a CUDA device: pip install 'brewnet[gpu]'")
    _state["mode"] = "gpu"


def set_device(device_id: int) -> None:
    _state["device"] = int(device_id)
    cp = cupy_or_none()
    if cp is not None:
        cp.cuda.Device(int(device_id)).use()


def mode() -> str:
    return _state["mode"]


def default_xp() -> Any:
    """The array module new blobs are allocated with under the current mode."""
    if _state["mode"] == "gpu":
        import cupy
        return cupy
    return np


def synchronizer() -> Callable[[], None]:
    """A function that waits for the GPU work queued on the current device, so a timing
    covers it (Caffe times with CUDA events); nothing to wait for on the CPU."""
    cp = cupy_or_none() if _state["mode"] == "gpu" else None
    if cp is None:
        return lambda: None
    return lambda: cp.cuda.Device().synchronize()


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy view or copy of ``a`` (host copy for CuPy arrays)."""
    if isinstance(a, np.ndarray):
        return a
    return a.get()


def solver_count() -> int:
    """How many solvers train together (Caffe's ``Caffe::solver_count``); 1 unless set."""
    return _parallel["solver_count"]


def set_solver_count(count: int) -> None:
    """Record the number of cooperating solvers; they exchange gradients once joined by
    ``NCCL``/``MPI`` (brewnet.parallel)."""
    from .errors import BrewnetError
    if int(count) < 1:
        raise BrewnetError(f"set_solver_count: the count must be at least 1, got {count}")
    _parallel["solver_count"] = int(count)


def solver_rank() -> int:
    """This process's rank among the solvers (Caffe's ``Caffe::solver_rank``); 0 unless set."""
    return _parallel["solver_rank"]


def set_solver_rank(rank: int) -> None:
    from .errors import BrewnetError
    if not 0 <= int(rank) < _parallel["solver_count"]:
        raise BrewnetError(f"set_solver_rank: rank {rank} is outside 0..{solver_count() - 1}; "
                           "call set_solver_count first")
    _parallel["solver_rank"] = int(rank)


def set_multiprocess(multiprocess: bool) -> None:
    """Record Caffe's ``multiprocess`` flag (one process per GPU, as train.py runs)."""
    _parallel["multiprocess"] = bool(multiprocess)


def multiprocess() -> bool:
    return _parallel["multiprocess"]


def has_nccl() -> bool:
    """Whether CuPy's NCCL is usable (with a CUDA device), so ``NCCL`` can join GPU ranks."""
    from .parallel.nccl import nccl_module
    return nccl_module() is not None
