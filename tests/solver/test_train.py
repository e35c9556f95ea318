"""End to end on real nets: a tiny LMDB → Data → InnerProduct → SoftmaxWithLoss (+ Accuracy
in TEST), trained by SGDSolver from a solver prototxt; a run resumed from a snapshot logs the
same losses and test outputs and ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import re

import lmdb
import numpy as np
import pytest

from brewnet.proto import caffe_pb2
from brewnet.solver import SGDSolver, get_solver

NET = """
name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  data_param {{ source: "{db}" batch_size: 4 backend: LMDB }} }}
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  data_param {{ source: "{db}_test" batch_size: 3 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.3 }}
    bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
layer {{ name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include {{ phase: TEST }} }}
"""

SOLVER = """
net: "net.prototxt"
test_iter: 2 test_interval: 3
base_lr: 0.2 momentum: 0.9 weight_decay: 0.001
lr_policy: "step" gamma: 0.5 stepsize: 4
display: 1 max_iter: 10 iter_size: 2
snapshot: 5 snapshot_prefix: "{prefix}"
random_seed: 7
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """LMDBs of 23 (train) and 13 (test) 2×2×2 float Datums (keys %08d, labels 0..2) and
    the net prototxt; record counts not multiples of the batch sizes, so batches wrap."""
    rng = np.random.default_rng(0)
    for name, count in (("db", 23), ("db_test", 13)):
        env = lmdb.open(str(tmp_path / name), map_size=1 << 22)
        with env.begin(write=True) as txn:
            for i in range(count):
                label = i % 3
                d = caffe_pb2.Datum(channels=2, height=2, width=2, label=label)
                d.float_data.extend((rng.normal(size=8) + label).astype(np.float32).tolist())
                txn.put(b"%08d" % i, d.SerializeToString())
        env.close()
    (tmp_path / "net.prototxt").write_text(NET.format(db=tmp_path / "db"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_solver(path, prefix: str) -> str:
    path.write_text(SOLVER.format(prefix=prefix))
    return str(path)


def progress(log_text: str) -> list[str]:
    """The lines that must agree between runs: losses, outputs, rates, tests (not timings)."""
    out = []
    for line in log_text.splitlines():
        msg = line.split("] ", 1)[-1]
        msg = re.sub(r"\(\S+ iter/s, \S+s/", "(", msg)
        if re.match(r"(Iteration \d+|    (Train|Test) net output)", msg):
            out.append(msg)
    return out


def test_resume_reproduces_uninterrupted_run(workdir, glog):
    """Snapshot at 5, restore, solve to 10: the log from iteration 5 on, and the final
    weights, equal those of one uninterrupted run (same random_seed)."""
    full = get_solver(write_solver(workdir / "a.prototxt", "a"))
    assert isinstance(full, SGDSolver)
    full.solve()
    full.close()
    full_log = progress(glog.getvalue())
    glog.truncate(0)
    glog.seek(0)
    resumed = SGDSolver(write_solver(workdir / "b.prototxt", "b"))
    resumed.solve("a_iter_5.solverstate")
    resumed.close()
    resumed_log = progress(glog.getvalue())
    start = full_log.index(next(m for m in full_log if m.startswith("Iteration 5 (")))
    assert resumed_log == full_log[start:]
    assert len(resumed_log) > 20
    for a, b in zip(full.net.learnable_params, resumed.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    assert (workdir / "a_iter_10.caffemodel").exists() and (workdir / "b_iter_10.solverstate"
                                                            ).exists()


def test_training_lowers_the_loss(workdir):
    """Ten SGD steps on separable data lower the train loss; test nets share the weights."""
    solver = SGDSolver(write_solver(workdir / "a.prototxt", "a"))
    try:
        first = solver.net.forward_loss()
        solver.step(10)
        assert solver.net.forward_loss() < first
        solver.test_all()
        test_ip = solver.test_nets[0].layer_dict["ip"].blobs[0]
        np.testing.assert_array_equal(test_ip.data, solver.net.layer_dict["ip"].blobs[0].data)
    finally:
        solver.close()


def _step_losses(solver, iters: int) -> list[float]:
    """The train loss of each of ``iters`` single steps, and the test loss of each step that
    began with a test (test_interval 3)."""
    out = []
    for _ in range(iters):
        tested = solver.iter % solver.param.test_interval == 0
        solver.step(1)
        out.append(float(solver.net.blobs["loss"].data))
        if tested:
            out.append(float(solver.test_nets[0].blobs["loss"].data))
    return out


def test_restore_after_training_matches_a_fresh_restore(workdir):
    """restore() positions the data layers absolutely: a solver that trained to iteration 8
    and then restores the iteration-5 snapshot sees exactly the train and test losses (and
    ends with the weights) of a fresh solver restored from the same file."""
    used = SGDSolver(write_solver(workdir / "a.prototxt", "a"))
    fresh = SGDSolver(write_solver(workdir / "b.prototxt", "b"))
    try:
        used.step(8)
        used.restore("a_iter_5.solverstate")
        fresh.restore("a_iter_5.solverstate")
        assert used.iter == fresh.iter == 5
        got, want = _step_losses(used, 5), _step_losses(fresh, 5)
        assert len(got) == 5 + 2 and got == want  # tests at iterations 6 and 9
        for a, b in zip(used.net.learnable_params, fresh.net.learnable_params, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    finally:
        used.close()
        fresh.close()
