"""Reading the launcher's environment, and the one-line errors of a bad multi-rank start."""

from __future__ import annotations

import sys

import pytest

from brewnet.cli import main as cli
from brewnet.errors import BrewnetError
from brewnet.parallel import world
from brewnet.parallel.comm import SINGLE
from brewnet.parallel.mpi import import_mpi

LAUNCHERS = ("BREWNET_WORLD_SIZE", "BREWNET_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID",
             "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK")


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_without_a_launcher(env):
    assert world.launched() == world.Launch("none")
    assert world.join(world.launched(), []) == (SINGLE, None)


@pytest.mark.parametrize(("variables", "want"), [
    ({"PMI_SIZE": "4", "PMI_RANK": "2", "MPI_LOCALRANKID": "0"},
     world.Launch("mpiexec", 4, 2, 0)),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"},
     world.Launch("mpirun", 2, 1, None)),
    ({"BREWNET_WORLD_SIZE": "2", "BREWNET_RANK": "1", "PMI_SIZE": "1", "PMI_RANK": "0"},
     world.Launch("brewnet", 2, 1, 1)),
])
def test_launchers_are_recognized(env, variables, want):
    for name, value in variables.items():
        env.setenv(name, value)
    assert world.launched() == want


def test_malformed_rank_variables_are_an_error(env):
    env.setenv("PMI_SIZE", "two")
    env.setenv("PMI_RANK", "0")
    with pytest.raises(BrewnetError, match="must be integers"):
        world.launched()


def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(BrewnetError, match=r"pip install 'brewnet\[mpi\]'"):
        import_mpi()


def test_brewnet_launcher_without_gpus_is_an_error(env):
    with pytest.raises(BrewnetError, match="use mpiexec for CPU ranks"):
        world.join(world.Launch("brewnet", 2, 1, 1), [])


def test_several_gpus_without_cupy_is_one_line(env, monkeypatch, capsys, tmp_path):
    """--gpu 0,1 needs CuPy with NCCL: one line, exit 1 (on this machine there is no CuPy)."""
    from brewnet import backend

    monkeypatch.setattr(backend, "cupy_or_none", lambda: None)
    monkeypatch.setattr("brewnet.cli.solve.gpu_count", lambda: 2)
    assert cli.main(["solve", "--solver", str(tmp_path / "s.prototxt"), "--gpu", "0,1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs CuPy with NCCL" in err[0]


def test_mpiexec_without_mpi4py_is_one_line(env, monkeypatch, capsys, tmp_path):
    """Started by mpiexec (its variables set) where mpi4py cannot be imported."""
    env.setenv("PMI_SIZE", "2")
    env.setenv("PMI_RANK", "0")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    solver = tmp_path / "s.prototxt"
    solver.write_text('net: "net.prototxt"')
    assert cli.main(["solve", "--solver", str(solver)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "several ranks need mpi4py" in err[0]
