"""The array module (NumPy or CuPy) and the global compute mode, as pycaffe's set_mode_*.

Layer code never imports cupy: it asks ``get_array_module(array)`` for ``xp`` so one body
serves both backends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_state = {"mode": "cpu", "device": 0}


def cupy_or_none() -> Any:
    """The cupy module when it is installed and a device is usable, else None."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # ImportError, or CUDA present but no device
        return None


def get_array_module(*arrays: Any) -> Any:
    """numpy, or cupy when any of ``arrays`` lives on a GPU."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy  # noqa: PLC0415

            return cupy
    return np


def set_mode_cpu() -> None:
    _state["mode"] = "cpu"


def set_mode_gpu() -> None:
    from .errors import BrewnetError  # noqa: PLC0415

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
        import cupy  # noqa: PLC0415

        return cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy view or copy of ``a`` (host copy for CuPy arrays)."""
    if isinstance(a, np.ndarray):
        return a
    return a.get()
