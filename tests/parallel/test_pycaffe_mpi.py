"""BVLC's python/train.py flow with brewnet's MPI counterpart of NCCL, under mpiexec: the two
ranks end with identical weights, equal (to float32 rounding) to one process with batch 64."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.parallel.helpers import MPIEXEC, brewnet_env, make_digits, needs_mpi, write_lenet

pytestmark = [pytest.mark.slow, needs_mpi]

SCRIPT = '''
import sys
import numpy as np
from mpi4py import MPI as mpi
import brewnet as caffe

comm = mpi.COMM_WORLD
caffe.set_solver_count(comm.size)
caffe.set_solver_rank(comm.rank)
caffe.set_multiprocess(True)
solver = caffe.SGDSolver(sys.argv[1])
sync = caffe.MPI(solver) if comm.size > 1 else None
if sync is not None:
    sync.bcast()
    solver.add_callback(sync)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(sync)
solver.step(solver.param.max_iter)
weights = np.concatenate([p.data.ravel() for p in solver.net.learnable_params])
np.save(f"{sys.argv[2]}_rank{comm.rank}.npy", weights)
'''
SOLVER = ('type: "SGD" base_lr: 0.003 momentum: 0.9 lr_policy: "fixed" max_iter: 20\n'
          'test_iter: 1 test_interval: 1000 test_initialization: false\n')


def test_train_py_flow_with_caffe_mpi(tmp_path: Path):
    make_digits(tmp_path, train=512, test=100)
    (tmp_path / "train.py").write_text(SCRIPT)
    one = write_lenet(tmp_path, 64, SOLVER, "one")
    two = write_lenet(tmp_path, 32, SOLVER, "two")
    python = [sys.executable, "train.py"]
    for command in (python + [one.name, "one"], [MPIEXEC, "-n", "2", *python, two.name, "two"]):
        done = subprocess.run(command, cwd=tmp_path, env=brewnet_env(), capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
    single = np.load(tmp_path / "one_rank0.npy")
    rank0, rank1 = (np.load(tmp_path / f"two_rank{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(rank0, rank1)
    assert np.linalg.norm(rank0 - single) / np.linalg.norm(single) < 1e-5
