"""What brewnet can compute on, for ``brewnet device_query``: NumPy with the BLAS it was built
against, the kernels and thread count that BLAS runs with, and CuPy's CUDA devices with the
properties Caffe's ``device_query`` lists (name, compute capability, memory,
multiprocessors...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import __version__, blas_env
from ..cores import blas_text
from ..errors import BrewnetError

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_GIB = 2**30


def _blas_config() -> dict[str, Any]:
    """NumPy's build record of its BLAS: ``show_config(mode="dicts")`` in recent NumPy, else
    the older ``numpy.__config__`` tables."""
    try:
        info = np.show_config(mode="dicts")
        return dict(info.get("Build Dependencies", {}).get("blas", {}))
    except TypeError:  # older NumPy: no mode argument
        config = getattr(np, "__config__", None)
        old = getattr(config, "blas_opt_info", None) or {}
        return {"name": ", ".join(old.get("libraries", [])) or "unknown"}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_threads() -> str:
    """The BLAS thread count and where it comes from: threadpoolctl when installed, else the
    environment variables BLAS libraries read, else their default (one per usable core)."""
    try:
        from threadpoolctl import threadpool_info  # optional
    except ImportError:
        pass
    else:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return ", ".join(f"{p['num_threads']} ({p.get('internal_api', 'blas')}, "
                             "threadpoolctl)" for p in pools)
    for name in _THREAD_VARIABLES:
        if os.environ.get(name):
            return f"{os.environ[name]} (from {name})"
    return f"{_cpu_count()} (the library default, one per usable core; set OMP_NUM_THREADS " \
           "to change it)"


def blas_kernels(environ: dict[str, str] | None = None) -> str | None:
    """The kernels NumPy's OpenBLAS runs and who chose them (``OPENBLAS_CORETYPE`` set by the
    environment or by brewnet's blas_env, else OpenBLAS itself for this CPU); None when the
    BLAS is not an OpenBLAS that names them. A pin matters: on AMD Zen 5 OpenBLAS's own
    AVX-512 kernels run sgemm twice as fast as the Haswell ones."""
    name = blas_text("get_corename")
    if name is None:
        return None
    environ = dict(os.environ if environ is None else environ)
    value = environ.get(blas_env.VARIABLE)
    if value is None:
        return f"{name} (OpenBLAS's own pick for this CPU)"
    if environ.get(blas_env.MARK) == value:
        return f"{name} (brewnet's pick for this CPU: brewnet/blas_env.py)"
    return (f"{name} (OPENBLAS_CORETYPE={value} in the environment; unset it to let OpenBLAS "
            "pick for this CPU)")


def numpy_lines() -> Iterator[str]:
    """NumPy's version, BLAS (name, version, configuration, kernels) and threads."""
    blas = _blas_config()
    yield f"NumPy {np.__version__} (CPU mode)"
    name = blas.get("name", "unknown")
    version = f" {blas['version']}" if blas.get("version") else ""
    yield f"  BLAS: {name}{version}"
    detail = blas.get("openblas configuration")
    if detail:
        yield f"  BLAS configuration: {' '.join(str(detail).split())}"
    kernels = blas_kernels()
    if kernels is not None:
        yield f"  BLAS kernels: {kernels}"
    yield f"  BLAS threads: {blas_threads()}"


# Caffe's device_query wording, then the key of cupy's getDeviceProperties dict.
_CAFFE_FIELDS = (
    ("Total shared memory per block", "sharedMemPerBlock"),
    ("Total registers per block", "regsPerBlock"),
    ("Warp size", "warpSize"),
    ("Maximum threads per block", "maxThreadsPerBlock"),
    ("Maximum dimension of block", "maxThreadsDim"),
    ("Maximum dimension of grid", "maxGridSize"),
    ("Clock rate", "clockRate"),
    ("Total constant memory", "totalConstMem"),
    ("Number of multiprocessors", "multiProcessorCount"),
)


def _field(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _cuda_version(code: int) -> str:
    """CUDA's version numbers, 12040 → ``12.4``."""
    return f"{code // 1000}.{code % 1000 // 10}"


def device_lines(cp: Any, device: int) -> Iterator[str]:
    """One CUDA device as Caffe's device_query describes it, plus its free memory."""
    props = cp.cuda.runtime.getDeviceProperties(device)
    name = props.get("name", b"?")
    name = name.decode() if isinstance(name, bytes) else str(name)
    with cp.cuda.Device(device):
        free, total = cp.cuda.runtime.memGetInfo()
    yield f"  Device id: {device}"
    yield f"    Name: {name}"
    yield f"    Compute capability: {props.get('major', '?')}.{props.get('minor', '?')}"
    yield f"    Total global memory: {total / _GIB:.1f} GiB ({total} bytes), " \
          f"free {free / _GIB:.1f} GiB"
    for label, key in _CAFFE_FIELDS:
        if key in props:
            yield f"    {label}: {_field(props[key])}"


def cupy_lines(devices: list[int] | None = None) -> Iterator[str]:
    """CuPy's version, CUDA runtime and driver, and each device (``devices``: the ids to show,
    None for all); a line saying why when CuPy or a device is missing."""
    try:
        import cupy as cp  # optional dependency
    except ImportError:
        yield "CuPy: not installed; GPU mode is unavailable (pip install 'brewnet[gpu]')"
        return
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA errors come in several classes
        yield f"CuPy {cp.__version__}: no usable CUDA device ({type(e).__name__}: {e})"
        return
    runtime = _cuda_version(cp.cuda.runtime.runtimeGetVersion())
    driver = _cuda_version(cp.cuda.runtime.driverGetVersion())
    yield (f"CuPy {cp.__version__} (GPU mode): CUDA runtime {runtime}, driver {driver}, "
           f"{count} device(s)")
    for device in range(count) if devices is None else devices:
        if device >= count:
            raise BrewnetError(f"GPU {device} does not exist: {count} device(s) found, "
                               f"numbered 0 to {count - 1}")
        yield from device_lines(cp, device)


def report_lines(devices: list[int] | None = None) -> Iterator[str]:
    """The whole report: brewnet and Python, NumPy, CuPy."""
    python = sys.version.split()[0]
    yield f"brewnet {__version__} on Python {python}"
    yield from numpy_lines()
    yield from cupy_lines(devices)
