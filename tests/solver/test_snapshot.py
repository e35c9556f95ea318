"""Snapshots and restore (Caffe's Snapshot/Restore, SolverState in binary protobuf): file
names, contents, exact continuation, and the errors a person meets with wrong files."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.errors import WeightsError
from brewnet.proto import caffe_pb2
from brewnet.solver import SGDSolver
from brewnet.solver.snapshot import count_test_passes
from tests.solver.fakes import FakeNet


@pytest.fixture(autouse=True)
def fake_net(monkeypatch):
    monkeypatch.setattr("brewnet.solver.solver.Net", FakeNet)
    FakeNet.instances.clear()


def make_param(prefix, extra: str = "") -> caffe_pb2.SolverParameter:
    text = (f'net_param {{ name: "fake" }} base_lr: 0.1 lr_policy: "multistep" gamma: 0.5 '
            f'stepvalue: 2 stepvalue: 5 momentum: 0.9 weight_decay: 0.01 max_iter: 8 '
            f'snapshot: 3 snapshot_prefix: "{prefix}" iter_size: 2 test_iter: 2 '
            f'test_interval: 2 {extra}')
    return text_format.Parse(text, caffe_pb2.SolverParameter())


def test_snapshot_files_and_state_contents(tmp_path):
    """`<prefix>_iter_N.caffemodel` holds the weights; `.solverstate` holds iter, the model
    path as written, current_step and one history blob per parameter."""
    prefix = str(tmp_path / "fake")
    solver = SGDSolver(make_param(prefix))
    solver.step(3)
    assert sorted(os.listdir(tmp_path)) == ["fake_iter_3.caffemodel", "fake_iter_3.solverstate"]
    state = caffe_pb2.SolverState.FromString((tmp_path / "fake_iter_3.solverstate").read_bytes())
    assert state.iter == 3 and state.current_step == 1
    assert state.learned_net == prefix + "_iter_3.caffemodel"
    assert len(state.history) == 2
    for bp, h in zip(state.history, solver.history, strict=True):
        assert list(bp.shape.dim) == list(h.shape)
        np.testing.assert_array_equal(np.asarray(bp.data, np.float32).reshape(h.shape), h)
    model = caffe_pb2.NetParameter.FromString((tmp_path / "fake_iter_3.caffemodel").read_bytes())
    np.testing.assert_array_equal(model.layer[0].blobs[1].data,
                                  solver.net.learnable_params[1].data)


def test_restore_continues_exactly(tmp_path):
    """Restoring iteration 3 and solving to the end gives the same weights, momentum and
    schedule step as an uninterrupted run; the data is moved (absolutely) to train batch
    iter·iter_size and test batch (tests run so far)·test_iter, even after the resumed
    solver had already consumed batches of its own."""
    full = SGDSolver(make_param(str(tmp_path / "a")))
    full.solve()
    resumed = SGDSolver(make_param(str(tmp_path / "b")))
    resumed.step(1)  # data consumed before the restore must not shift it
    resumed.restore(tmp_path / "a_iter_3.solverstate")
    assert resumed.iter == 3 and resumed.current_step == 1
    assert resumed.net.seeked_to == 3 * 2
    assert resumed.test_nets[0].seeked_to == 2 * 2  # tests ran at iterations 0 and 2
    resumed.solve()
    for a, b in zip(full.net.learnable_params, resumed.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(full.history, resumed.history, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.current_step == full.current_step == 2


def test_solve_with_resume_file_logs_restoring(tmp_path, glog):
    """solve(resume_file) logs `Restoring previous solver status from <file>` and resumes."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    solver = SGDSolver(make_param(str(tmp_path / "a")))
    solver.solve(str(tmp_path / "a_iter_3.solverstate"))
    assert f"Restoring previous solver status from {tmp_path}/a_iter_3.solverstate" \
        in glog.getvalue()
    assert solver.iter == 8


@pytest.mark.parametrize("iter,interval,init,expected", [
    (0, 2, True, 0), (1, 2, True, 1), (2, 2, True, 1), (3, 2, True, 2), (4, 2, False, 1),
    (5, 0, True, 0), (500, 100, True, 5), (501, 100, False, 5),
])
def test_count_test_passes(iter, interval, init, expected):
    """TestAll runs at each multiple of test_interval below iter (iteration 0 only with
    test_initialization)."""
    assert count_test_passes(iter, interval, init) == expected


def test_truncated_solverstate(tmp_path):
    """A truncated .solverstate raises WeightsError naming the file."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    path = tmp_path / "a_iter_3.solverstate"
    path.write_bytes(path.read_bytes()[:-7])
    solver = SGDSolver(make_param(str(tmp_path / "a")))
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        solver.restore(path)
    assert solver.iter == 0


@pytest.mark.parametrize("name", ["a_iter_3.caffemodel", "renamed.solverstate"])
def test_caffemodel_instead_of_solverstate(tmp_path, name):
    """Resuming from a .caffemodel (even renamed) says a .solverstate is needed."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    if name != "a_iter_3.caffemodel":
        shutil.copy(tmp_path / "a_iter_3.caffemodel", tmp_path / name)
    solver = SGDSolver(make_param(str(tmp_path / "a")))
    with pytest.raises(WeightsError, match=r"\.caffemodel \(weights only\); resuming needs "
                                           r"the \.solverstate"):
        solver.restore(tmp_path / name)


def test_history_count_mismatch(tmp_path):
    """A state with another number of history blobs is refused, naming both counts."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    path = tmp_path / "a_iter_3.solverstate"
    state = caffe_pb2.SolverState.FromString(path.read_bytes())
    del state.history[1]
    path.write_bytes(state.SerializeToString())
    with pytest.raises(WeightsError, match="holds 1, this solver and net need 2"):
        SGDSolver(make_param(str(tmp_path / "a"))).restore(path)


def test_malformed_history_blob_names_the_state_file(tmp_path):
    """A history blob whose values do not fill its declared shape is an error naming the
    .solverstate and the blob."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    path = tmp_path / "a_iter_3.solverstate"
    state = caffe_pb2.SolverState.FromString(path.read_bytes())
    del state.history[1].data[-1]
    path.write_bytes(state.SerializeToString())
    with pytest.raises(WeightsError, match=re.escape(f"{path}: history blob 1 is malformed")):
        SGDSolver(make_param(str(tmp_path / "a"))).restore(path)


def test_moved_snapshot_folder_still_restores(tmp_path, monkeypatch, glog):
    """learned_net is found beside the state file when the path as written is gone."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("run")
    SGDSolver(make_param("run/a")).step(3)
    shutil.move("run", "moved")
    solver = SGDSolver(make_param("moved/a"))
    solver.restore("moved/a_iter_3.solverstate")
    assert solver.iter == 3
    assert "beside the solver state" in glog.getvalue()


def test_missing_learned_net(tmp_path):
    """A state whose weights file is gone names the state file and the missing path."""
    SGDSolver(make_param(str(tmp_path / "a"))).step(3)
    os.remove(tmp_path / "a_iter_3.caffemodel")
    with pytest.raises(WeightsError, match="a_iter_3.caffemodel' \\(learned_net\\) was not"):
        SGDSolver(make_param(str(tmp_path / "a"))).restore(tmp_path / "a_iter_3.solverstate")


def test_unwritable_snapshot_names_the_file_and_the_snapshot_still_valid(tmp_path,
                                                                        monkeypatch):
    """A full disk (ENOSPC; RLIMIT_FSIZE alike) while snapshotting is a SolverError naming
    the file that could not be written and the earlier snapshot, which stays intact."""
    import errno

    from brewnet.errors import SolverError
    from brewnet.solver import snapshot as snap

    prefix = str(tmp_path / "fake")
    solver = SGDSolver(make_param(prefix))
    solver.step(3)
    kept = (tmp_path / "fake_iter_3.solverstate").read_bytes()

    def disk_full(filename, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(snap, "write_state", disk_full)
    with pytest.raises(SolverError) as info:
        solver.step(3)
    message = str(info.value)
    assert message.startswith(f"{prefix}_iter_6.solverstate: cannot write this snapshot file "
                              "at iteration 6: No space left on device;")
    assert f"the last complete snapshot, {prefix}_iter_3.solverstate, is intact" in message
    assert (tmp_path / "fake_iter_3.solverstate").read_bytes() == kept
