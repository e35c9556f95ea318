"""A failing rank ends the whole job quickly and says which rank and why; Ctrl-C stops every
rank after the same iteration with rank 0's final snapshot (2 ranks under mpiexec, LeNet with
a Python layer that misbehaves on rank 1 at its 4th forward)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.parallel.helpers import MPIEXEC, REPO, make_digits, needs_mpi, write_lenet

pytestmark = [pytest.mark.slow, needs_mpi]

FAULT = '''
import os, signal
import brewnet

class Fault(brewnet.Layer):
    def setup(self, bottom, top):
        self.calls = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        self.calls += 1
        if brewnet.solver_rank() == 1 and self.calls == 4:
            if self.param_str == "raise":
                raise RuntimeError("injected failure")
            if self.param_str == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.param_str == "nan":
                top[0].data[...] = float("nan")

    def backward(self, top, propagate_down, bottom):
        pass
'''
SOLVER = ('type: "SGD" base_lr: 0.003 momentum: 0.9 lr_policy: "fixed"\n'
          'test_iter: 1 test_interval: 1000 display: 1 max_iter: 5000\n')
LIMIT_S = 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults")
    make_digits(path, train=256, test=100)
    (path / "fault.py").write_text(FAULT)
    return path


def start(folder: Path, mode: str) -> subprocess.Popen:
    solver = write_lenet(folder, 32, SOLVER, mode)
    net = folder / f"{mode}_net.prototxt"
    net.write_text(net.read_text().replace(
        'layer {\n  name: "conv1"',
        f'layer {{ name: "fault" type: "Python" bottom: "data" top: "data"\n'
        f'  python_param {{ module: "fault" layer: "Fault" param_str: "{mode}" }} }}\n'
        'layer {\n  name: "conv1"', 1))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{folder}",
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "brewnet", "solve",
                             "--solver", solver.name, "--allow-python-layers"],
                            cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen, limit: float = LIMIT_S) -> tuple[int, str, float]:
    began = time.monotonic()
    try:
        out, _ = job.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        pytest.fail(f"the job still ran after {limit} s")
    return job.returncode, out, time.monotonic() - began


def test_a_rank_that_raises_ends_the_job_naming_itself(folder):
    code, out, _ = finish(start(folder, "raise"))
    assert code != 0
    assert "brewnet: error: rank 1 of 2: RuntimeError: injected failure" in out


def test_a_rank_killed_by_sigkill_ends_the_job(folder):
    """mpiexec reports a dead process by pid and signal, and rank 0's log maps that pid to its
    rank. Which pid: the first end hydra sees, the killed rank 1 or rank 0 it killed while
    cleaning up (a race, seen in CI), so the test asks only that it is one of the logged."""
    code, out, _ = finish(start(folder, "kill"))
    assert code != 0
    logged = dict(re.findall(r"rank (\d+) pid (\d+)", out.split("process ids: ")[1].split("\n")[0]))
    assert sorted(logged) == ["0", "1"]
    reported = re.search(r"PID (\d+) RUNNING", out)
    assert reported and reported.group(1) in logged.values()
    assert "signal 9" in out


def test_a_nan_on_one_rank_stops_every_rank(folder):
    code, out, _ = finish(start(folder, "nan"))
    assert code == 1
    assert "training diverged at iteration 3: the mean loss over the 2 ranks is nan" in out
    assert "another rank diverged" in out


def test_ctrl_c_stops_all_ranks_with_rank_0_snapshotting(folder):
    job = start(folder, "none")
    assert job.stdout is not None
    for line in job.stdout:  # wait until training runs
        if "Iteration 5 " in line:
            break
    job.send_signal(signal.SIGINT)  # mpiexec forwards Ctrl-C to every rank
    code, out, _ = finish(job)
    assert code == 0, out[-2000:]
    assert "Optimization stopped early." in out
    snapshots = sorted(folder.glob("none_iter_*.solverstate"))
    assert len(snapshots) == 1
