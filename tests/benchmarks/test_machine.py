"""benchmarks.machine: the lines that say what the figures depend on."""

from __future__ import annotations

import pytest

from benchmarks import machine
from brewnet import blas_env


@pytest.fixture
def own_pick(monkeypatch):
    if machine.blas_symbol("get_corename") is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS that names its kernels")
    monkeypatch.setattr(machine, "_own_corename", lambda environ: "SkylakeX")


def test_a_pinned_kernel_choice_names_who_pinned_it(own_pick):
    """OPENBLAS_CORETYPE set by the run's environment and set by brewnet's blas_env (its
    mark beside it) read differently, each with OpenBLAS's own pick; unset, no line."""
    line = machine.blas_kernels_line({blas_env.VARIABLE: "Haswell"})
    assert line is not None
    assert "(OPENBLAS_CORETYPE=Haswell in the environment;" in line
    assert line.endswith("OpenBLAS's own pick here: SkylakeX")
    line = machine.blas_kernels_line({blas_env.VARIABLE: "Haswell", blas_env.MARK: "Haswell"})
    assert line is not None and "brewnet's pick" in line
    assert machine.blas_kernels_line({}) is None


def test_openblas_own_pick_ignores_the_variable():
    """The child that asks OpenBLAS for its own pick starts without the variable: a pin to
    Prescott does not change its answer."""
    if machine.blas_symbol("get_corename") is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS that names its kernels")
    import os

    unset = {k: v for k, v in os.environ.items() if k != blas_env.VARIABLE}
    own = machine._own_corename(unset)
    assert own != "unknown"
    assert machine._own_corename({**unset, blas_env.VARIABLE: "Prescott"}) == own


def test_cpu_model_names_the_family():
    try:
        with open("/proc/cpuinfo") as f:
            has_family = "cpu family" in f.read(1 << 16)
    except OSError:
        has_family = False
    assert ("(family " in machine.cpu_model()) == has_family
