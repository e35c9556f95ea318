"""``debug_info: true`` logs Caffe's per-blob mean absolute values (asum/count): [Forward]
tops and parameters as each layer runs, [Backward] bottom and parameter gradients, the L1/L2
summary, and [Update] after the update, on display iterations only; checked against a NumPy
forward/backward of the same tiny net written here."""

from __future__ import annotations

import re

import numpy as np
import pytest

from brewnet.net import TRAIN, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import SGDSolver
from brewnet.solver.debug_info import forward_lines, update_lines

NET = """
name: "dbg"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 }
    data_filler { type: "gaussian" std: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "out"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "constant" value: -0.2 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "y" top: "loss" }
"""

LINE = re.compile(r"\] {5}\[(Forward|Backward)\] Layer (\S+), (top blob|bottom blob|param blob) "
                  r"(\S+) (data|diff): (\S+)$")
UPDATE = re.compile(r"\] {5}\[Update\] Layer (\S+), param (\S+) data: (\S+); diff: (\S+)$")


def mean_abs(a: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64)).mean())


def solver_param(tmp_path, **fields) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", momentum=0.9, display=2,
                                  debug_info=True, random_seed=3, **fields)
    p.net_param.CopyFrom(parse_text(NET, caffe_pb2.NetParameter()))
    return p


def test_debug_lines_match_a_numpy_pass(tmp_path, glog):
    """One iteration: the lines come in Caffe's order (forward in layer order, backward in
    reverse, updates) with the values of an independent NumPy pass; the [Forward] line of
    ip1 shows its top before the in-place ReLU."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=1))
    net = solver.net
    w1, b1, w2, b2 = (np.array(net.params[n][j].data) for n in ("ip1", "ip2") for j in (0, 1))
    solver.step(1)
    x, y = np.array(net.blobs["x"].data), np.array(net.blobs["y"].data)

    pre = x @ w1.T + b1
    h = np.maximum(pre, 0)
    out = h @ w2.T + b2
    loss = ((out - y) ** 2).sum() / 2 / 2
    dout = (out - y) / 2
    dw2, db2, dh = dout.T @ h, dout.sum(0), dout @ w2
    dpre = dh * (pre > 0)
    dw1, db1 = dpre.T @ x, dpre.sum(0)
    expected = [
        ("Forward", "data", "top blob", "x", "data", mean_abs(x)),
        ("Forward", "data", "top blob", "y", "data", mean_abs(y)),
        ("Forward", "ip1", "top blob", "h", "data", mean_abs(pre)),
        ("Forward", "ip1", "param blob", "0", "data", mean_abs(w1)),
        ("Forward", "ip1", "param blob", "1", "data", mean_abs(b1)),
        ("Forward", "relu1", "top blob", "h", "data", mean_abs(h)),
        ("Forward", "ip2", "top blob", "out", "data", mean_abs(out)),
        ("Forward", "ip2", "param blob", "0", "data", mean_abs(w2)),
        ("Forward", "ip2", "param blob", "1", "data", mean_abs(b2)),
        ("Forward", "loss", "top blob", "loss", "data", abs(loss)),
        ("Backward", "loss", "bottom blob", "out", "diff", mean_abs(dout)),
        ("Backward", "ip2", "bottom blob", "h", "diff", mean_abs(dh)),
        ("Backward", "ip2", "param blob", "0", "diff", mean_abs(dw2)),
        ("Backward", "ip2", "param blob", "1", "diff", mean_abs(db2)),
        ("Backward", "relu1", "bottom blob", "h", "diff", mean_abs(dpre)),
        ("Backward", "ip1", "param blob", "0", "diff", mean_abs(dw1)),
        ("Backward", "ip1", "param blob", "1", "diff", mean_abs(db1)),
    ]
    text = glog.getvalue()
    got = [m.groups() for m in map(LINE.search, text.splitlines()) if m]
    assert [g[:5] for g in got] == [e[:5] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert float(g[5]) == pytest.approx(e[5], rel=2e-5), g

    grads = [dw1, db1, dw2, db2]
    params = [w1, b1, w2, b2]
    l1 = sum(np.abs(p).sum() for p in params), sum(np.abs(g).sum() for g in grads)
    l2 = (np.sqrt(sum((p ** 2).sum() for p in params)),
          np.sqrt(sum((g ** 2).sum() for g in grads)))
    summary = re.search(r"^E.*\] {5}\[Backward\] All net params \(data, diff\): L1 norm = "
                        r"\((\S+), (\S+)\); L2 norm = \((\S+), (\S+)\)$", text, re.M)
    assert summary is not None
    assert [float(v) for v in summary.groups()] == pytest.approx([*l1, *l2], rel=2e-5)

    # Update: first step of momentum SGD, history 0: the applied update is 0.1·gradient.
    updates = [m.groups() for m in map(UPDATE.search, text.splitlines()) if m]
    assert [u[:2] for u in updates] == [("ip1", "0"), ("ip1", "1"), ("ip2", "0"), ("ip2", "1")]
    for (_, _, data, diff), p, g in zip(updates, params, grads, strict=True):
        assert float(data) == pytest.approx(mean_abs(p - np.float32(0.1) * g), rel=2e-5)
        assert float(diff) == pytest.approx(mean_abs(np.float32(0.1) * g), rel=2e-5)
    # Order: forward lines, backward lines, the summary, the display line, lr, updates.
    order = [text.index(s) for s in ("[Forward] Layer data", "[Backward] Layer loss",
                                     "All net params", "Iteration 0 (", "lr = 0.1",
                                     "[Update] Layer ip1")]
    assert order == sorted(order)


def test_debug_lines_only_on_display_iterations(tmp_path, glog):
    """display: 2 → iterations 0 and 2 report, 1 and 3 do not (Caffe sets the net's
    debug_info to display && debug_info each iteration)."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=4))
    solver.step(4)
    text = glog.getvalue()
    assert text.count("[Forward] Layer data, top blob x data") == 2
    assert text.count("[Update] Layer ip2, param 1 data") == 2


def test_no_debug_lines_without_debug_info(tmp_path, glog):
    """debug_info false (the default): none of these lines."""
    solver = SGDSolver(solver_param(tmp_path, max_iter=2))
    solver.param.debug_info = False
    solver.step(2)
    assert "[Forward]" not in glog.getvalue() and "[Update]" not in glog.getvalue()


SHARED = """
name: "shared"
layer { name: "data" type: "DummyData" top: "x"
  dummy_data_param { shape { dim: 2 dim: 3 } } }
layer { name: "ipA" type: "InnerProduct" bottom: "x" top: "a"
  param { name: "w" } inner_product_param { num_output: 3 bias_term: false } }
layer { name: "ipB" type: "InnerProduct" bottom: "a" top: "b"
  param { name: "w" } inner_product_param { num_output: 3 bias_term: false } }
"""


def test_shared_parameters_use_display_names_and_owner():
    """A parameter named by its ParamSpec shows that name; the sharing layer's [Update] line
    names the owner, as Caffe's UpdateDebugInfo."""
    net = Net(parse_text(SHARED, caffe_pb2.NetParameter()), TRAIN)
    w = net.params["ipA"][0]
    w.data[...] = np.arange(9, dtype=np.float32).reshape(3, 3) - 4
    w.diff[...] = 0.5
    assert "    [Forward] Layer ipA, param blob w data: 2.22222" in forward_lines(net.plan, 1)
    assert update_lines(net.plan) == [
        "    [Update] Layer ipA, param w data: 2.22222; diff: 0.5",
        "    [Update] Layer ipB, param blob w (owned by layer ipA, param w) diff: 0.5"]
