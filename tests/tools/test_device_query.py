"""``device_query``'s report: NumPy with its BLAS and thread count, and CuPy's devices with
Caffe's device_query fields (checked against a stand-in CuPy where no GPU is present)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from brewnet.errors import BrewnetError
from brewnet.tools import device_query as dq


def test_numpy_lines_name_the_blas_and_threads(monkeypatch):
    """The NumPy version, the BLAS NumPy was built with, and a thread count with its source
    (an environment variable when set)."""
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    lines = list(dq.numpy_lines())
    assert lines[0] == f"NumPy {np.__version__} (CPU mode)"
    assert lines[1].startswith("  BLAS: ") and "unknown" not in lines[1]
    assert lines[-1] == "  BLAS threads: 3 (from OMP_NUM_THREADS)"


def test_missing_cupy_is_one_clear_line(monkeypatch):
    """Without CuPy: a line saying GPU mode is unavailable and what to install."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert list(dq.cupy_lines()) == [
        "CuPy: not installed; GPU mode is unavailable (pip install 'brewnet[gpu]')"]


class _Device:
    def __init__(self, device):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_cupy():
    props = {"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "warpSize": 32,
             "maxThreadsDim": (1024, 1024, 64), "multiProcessorCount": 132}
    runtime = SimpleNamespace(
        getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 12040,
        driverGetVersion=lambda: 12080, getDeviceProperties=lambda i: props,
        memGetInfo=lambda: (70 * 2**30, 80 * 2**30))
    return SimpleNamespace(__version__="13.3.0",
                           cuda=SimpleNamespace(runtime=runtime, Device=_Device))


def test_cupy_devices_show_name_capability_and_memory(monkeypatch):
    """Each device: its name, compute capability, total and free memory, and Caffe's
    device_query fields that CUDA reports."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    lines = list(dq.cupy_lines())
    assert lines[:5] == [
        "CuPy 13.3.0 (GPU mode): CUDA runtime 12.4, driver 12.8, 1 device(s)",
        "  Device id: 0",
        "    Name: NVIDIA H100 80GB HBM3",
        "    Compute capability: 9.0",
        f"    Total global memory: 80.0 GiB ({80 * 2**30} bytes), free 70.0 GiB"]
    assert "    Warp size: 32" in lines
    assert "    Maximum dimension of block: 1024, 1024, 64" in lines
    assert "    Number of multiprocessors: 132" in lines
    with pytest.raises(BrewnetError, match="GPU 2 does not exist: 1 device"):
        list(dq.cupy_lines([2]))


def test_report_starts_with_brewnet_and_python():
    """The first line names brewnet's and Python's versions."""
    first = next(dq.report_lines())
    assert first.startswith("brewnet ") and " on Python 3." in first


def test_blas_kernels_say_who_chose_them():
    """The kernels NumPy's OpenBLAS runs, and whether OPENBLAS_CORETYPE chose them (set by the
    environment, or by brewnet's blas_env with its mark beside it) or OpenBLAS did."""
    from brewnet import blas_env

    if dq.blas_text("get_corename") is None:
        assert dq.blas_kernels({}) is None
        return
    assert dq.blas_kernels({}).endswith("(OpenBLAS's own pick for this CPU)")
    pinned = dq.blas_kernels({blas_env.VARIABLE: "Haswell"})
    assert pinned.endswith("(OPENBLAS_CORETYPE=Haswell in the environment; unset it to let "
                           "OpenBLAS pick for this CPU)")
    ours = dq.blas_kernels({blas_env.VARIABLE: "Haswell", blas_env.MARK: "Haswell"})
    assert ours.endswith("(brewnet's pick for this CPU: brewnet/blas_env.py)")
    assert pinned.split(" (")[0] == ours.split(" (")[0] != ""
