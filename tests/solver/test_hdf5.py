"""HDF5 snapshots (snapshot_format: HDF5) in Caffe's layout: ``.caffemodel.h5`` with
``/data/<layer>/<i>`` (and ``/diff/...``), ``.solverstate.h5`` with ``iter``, ``learned_net``,
``current_step`` and ``history/<i>``; restore and solve(resume_file) pick them by the ``.h5``
suffix, including files written the way Caffe's HDF5 code writes them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from brewnet.errors import ShapeError, SolverError, WeightsError
from brewnet.net import TRAIN, Net
from brewnet.net.hdf5_weights import load_hdf5_weights
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import SGDSolver

h5py = pytest.importorskip("h5py")

NET = """
name: "h5net"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 }
    data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  param { name: "w1" } param { lr_mult: 2 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "ip1b" type: "InnerProduct" bottom: "h" top: "h2"
  param { name: "w1" } inner_product_param { num_output: 3 bias_term: false } }
layer { name: "ip2" type: "InnerProduct" bottom: "h2" top: "out"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "y" top: "loss" }
"""


def solver_param(tmp_path, **fields) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter(base_lr=0.05, lr_policy="step", gamma=0.5, stepsize=2,
                                  momentum=0.9, weight_decay=0.01, random_seed=5,
                                  snapshot_prefix=str(tmp_path / "s"),
                                  snapshot_format=caffe_pb2.SolverParameter.HDF5)
    for k, v in fields.items():
        setattr(p, k, v)
    p.net_param.CopyFrom(parse_text(NET, caffe_pb2.NetParameter()))
    return p


def weights(net) -> dict[str, list[np.ndarray]]:
    return {name: [np.array(b.data) for b in blobs] for name, blobs in net.params.items()}


def test_files_are_laid_out_as_caffe(tmp_path):
    """A group per layer under /data (every layer), float32 datasets "0", "1"... shaped as
    the blobs; the shared weight is stored once (by its owner) under /data but under /diff for
    both; the state has scalar iter/current_step, the model path as learned_net, and one
    history dataset per learnable parameter; nothing else is left in the folder."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=3, snapshot=3, snapshot_diff=True))
    solver.solve()
    model, state = tmp_path / "s_iter_3.caffemodel.h5", tmp_path / "s_iter_3.solverstate.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name, state.name]
    net = solver.net
    with h5py.File(model, "r") as f:
        assert sorted(f) == ["data", "diff"]
        assert sorted(f["data"]) == ["data", "ip1", "ip1b", "ip2", "loss"]
        assert sorted(f["data/ip1"]) == ["0", "1"] and list(f["data/ip1b"]) == []
        assert list(f["diff/ip1b"]) == ["0"]
        for name, blobs in net.params.items():
            for j, blob in enumerate(blobs):
                if name != "ip1b":
                    d = f[f"data/{name}/{j}"]
                    assert d.dtype == np.float32 and d.shape == tuple(blob.data.shape)
                    np.testing.assert_array_equal(d[()], blob.data)
                np.testing.assert_array_equal(f[f"diff/{name}/{j}"][()], blob.diff)
    with h5py.File(state, "r") as f:
        assert f["iter"].shape == () and int(f["iter"][()]) == 3
        assert f["iter"].dtype == np.int32 and f["current_step"].dtype == np.int32
        string_type = f["learned_net"].id.get_type()
        assert string_type.get_strpad() == h5py.h5t.STR_NULLTERM
        assert string_type.get_size() == len(str(model)) + 1
        assert int(f["current_step"][()]) == 1  # step policy: the last rate was at iter 2
        assert f["learned_net"][()].rstrip(b"\0").decode() == str(model)
        assert sorted(f["history"], key=int) == ["0", "1", "2", "3"]  # w1, b1, ip2's w and b
        for i, h in enumerate(solver.history):
            np.testing.assert_array_equal(f[f"history/{i}"][()], h)


def test_resume_from_hdf5_state_matches_uninterrupted_run(tmp_path):
    """Snapshot at 2, solve(resume_file=...h5) to 5: the same weights, iteration, history and
    schedule as one uninterrupted run of 5."""
    full = SGDSolver(solver_param(tmp_path, max_iter=5, snapshot=2, snapshot_after_train=False))
    full.solve()
    resumed = SGDSolver(solver_param(tmp_path, max_iter=5, snapshot_after_train=False,
                                     random_seed=11))  # other initial weights: restore wins
    resumed.solve(str(tmp_path / "s_iter_2.solverstate.h5"))
    assert resumed.iter == full.iter == 5
    for name, arrays in weights(full.net).items():
        for a, b in zip(arrays, weights(resumed.net)[name], strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(full.history, resumed.history, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_reads_state_written_as_caffe_does(tmp_path):
    """A .solverstate.h5 made with HDF5's own calls as Caffe's SnapshotSolverStateToHDF5
    (H5LTmake_dataset_int → scalar int32, H5LTmake_dataset_string → scalar NUL-terminated
    string) and a .caffemodel.h5 as Net::ToHDF5, including an empty group for the data layer
    and none of the shared copy: restore loads all of it."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=1))
    rng = np.random.default_rng(0)
    values = {name: [rng.normal(size=b.data.shape).astype(np.float32) for b in blobs]
              for name, blobs in solver.net.params.items()}
    model = tmp_path / "caffe_iter_7.caffemodel.h5"
    with h5py.File(model, "w") as f:
        data = f.create_group("data")
        for layer in solver.net.layers:
            g = data.create_group(layer.name)
            if layer.name in values and layer.name != "ip1b":
                for j, v in enumerate(values[layer.name]):
                    g.create_dataset(str(j), data=v)
    history = [rng.normal(size=h.shape).astype(np.float32) for h in solver.history]
    state = tmp_path / "caffe_iter_7.solverstate.h5"
    fid = h5py.h5f.create(str(state).encode(), h5py.h5f.ACC_TRUNC)
    scalar = h5py.h5s.create(h5py.h5s.SCALAR)
    for name, v in ((b"iter", 7), (b"current_step", 1)):
        d = h5py.h5d.create(fid, name, h5py.h5t.NATIVE_INT32, scalar)
        d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(v, np.int32))
    text = str(model).encode()
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(text) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    d = h5py.h5d.create(fid, b"learned_net", tid, scalar)
    d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(text + b"\0", f"S{len(text) + 1}"), mtype=tid)
    fid.close()
    with h5py.File(state, "a") as f:
        g = f.create_group("history")
        for i, h in enumerate(history):
            g.create_dataset(str(i), data=h)

    solver.restore(str(state))
    assert solver.iter == 7 and solver.current_step == 1
    for name, arrays in values.items():
        source = values["ip1"] if name == "ip1b" else arrays  # ip1b shares ip1's weight
        for b, v in zip(solver.net.params[name], source, strict=False):
            np.testing.assert_array_equal(b.data, v)
    for mine, h in zip(solver.history, history, strict=True):
        np.testing.assert_array_equal(mine, h)


def test_weights_file_h5_loads_into_a_net_and_as_solver_weights(tmp_path):
    """load_hdf5_weights copies by layer name and ignores unknown layers; a solver's
    ``weights`` (fine-tuning) accepts a .caffemodel.h5 too."""
    a = SGDSolver(solver_param(tmp_path, max_iter=2, snapshot=2))
    a.solve()
    model = str(tmp_path / "s_iter_2.caffemodel.h5")
    with h5py.File(model, "a") as f:
        f["data"].create_group("not_in_net").create_dataset("0", data=np.zeros(3, np.float32))
    net = Net(solver_param(tmp_path).net_param, TRAIN)
    assert load_hdf5_weights(net.plan, model) == ["not_in_net"]
    for name, arrays in weights(a.net).items():
        for b, v in zip(net.params[name], arrays, strict=True):
            np.testing.assert_array_equal(b.data, v)
    p = solver_param(tmp_path, max_iter=0, random_seed=99)
    p.weights.append(model)
    b = SGDSolver(p)
    np.testing.assert_array_equal(b.net.params["ip2"][0].data, a.net.params["ip2"][0].data)


def test_wrong_files_are_named(tmp_path):
    """A .caffemodel.h5 given to restore says which file is needed; a weights file whose
    shapes differ names the layer and parameter; a history count mismatch is refused."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=1, snapshot=1))
    solver.solve()
    with pytest.raises(WeightsError, match=r"weights only.*s_iter_1\.solverstate\.h5"):
        solver.restore(str(tmp_path / "s_iter_1.caffemodel.h5"))
    bad = tmp_path / "bad.caffemodel.h5"
    with h5py.File(bad, "w") as f:
        f.create_group("data/ip2").create_dataset("0", data=np.zeros((5, 3), np.float32))
    with pytest.raises(ShapeError, match=r"bad\.caffemodel\.h5: layer 'ip2' \(InnerProduct\): "
                                         r".*shape \(5, 3\) for parameter 0 but this net needs "
                                         r"\(2, 3\)") as info:
        load_hdf5_weights(solver.net.plan, bad)
    assert info.value.layer == "ip2" and info.value.file == str(bad)
    state = tmp_path / "s_iter_1.solverstate.h5"
    with h5py.File(state, "a") as f:
        del f["history/3"]
    with pytest.raises(WeightsError, match="incorrect length of history blobs: the state "
                                           "holds 3, this solver and net need 4"):
        solver.restore(str(state))
    garbage = tmp_path / "garbage.solverstate.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="garbage.solverstate.h5: not a readable HDF5 file"):
        solver.restore(str(garbage))


def test_missing_h5py_is_a_clear_error(tmp_path, monkeypatch):
    """Without h5py, asking for HDF5 snapshots fails at start-up with how to install it."""
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(SolverError, match=r"snapshot_format: HDF5: HDF5 snapshots need h5py: "
                                          r"pip install 'brewnet\[hdf5\]'"):
        SGDSolver(solver_param(tmp_path, max_iter=1))
