"""The SGD update (Caffe's SGDSolver::ApplyUpdate) against its formulas, on a fake net:
clip (global L2 norm, before normalization) → ÷iter_size → L2/L1 decay with decay_mult →
V ← μV + rate·lr_mult·g → w ← w − V."""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.errors import SolverError
from brewnet.proto import caffe_pb2
from brewnet.solver import SGDSolver
from tests.solver.fakes import INIT, TARGET, FakeNet


@pytest.fixture(autouse=True)
def fake_net(monkeypatch):
    monkeypatch.setattr("brewnet.solver.solver.Net", FakeNet)
    FakeNet.instances.clear()


def make_param(**fields) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="step", gamma=0.5, stepsize=2,
                                  max_iter=100, **fields)
    p.net_param.name = "fake"
    return p


def reference(iters, *, momentum=0.0, weight_decay=0.0, reg="L2", iter_size=1, clip=-1.0,
              lr_mult=(1.0, 2.0), decay_mult=(1.0, 0.0)):
    """The update written out in float64, independently of brewnet's code."""
    w = [a.astype(np.float64) for a in INIT]
    v = [np.zeros_like(a) for a in w]
    call = 0
    for t in range(iters):
        rate = 0.1 * 0.5 ** (t // 2)
        g = [np.zeros_like(a) for a in w]
        for _ in range(iter_size):
            for gi, wi, ti in zip(g, w, TARGET, strict=True):
                gi += wi - ti + 0.1 * call
            call += 1
        if clip >= 0:
            norm = np.sqrt(sum((gi ** 2).sum() for gi in g))
            if norm > clip:
                g = [gi * clip / norm for gi in g]
        for i in range(len(w)):
            gi = g[i] / iter_size
            lam = weight_decay * decay_mult[i]
            gi = gi + lam * (w[i] if reg == "L2" else np.sign(w[i]))
            v[i] = momentum * v[i] + rate * lr_mult[i] * gi
            w[i] = w[i] - v[i]
    return w, v


CASES = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "l2": {"momentum": 0.9, "weight_decay": 0.05},
    "l1": {"momentum": 0.5, "weight_decay": 0.05, "reg": "L1"},
    "iter_size": {"momentum": 0.9, "weight_decay": 0.01, "iter_size": 3},
    "clip": {"momentum": 0.9, "clip": 0.5, "iter_size": 2},
    "clip_inactive": {"clip": 1e6},
}


@pytest.mark.parametrize("case", CASES)
def test_sgd_matches_formula(case):
    """Five iterations of the solver equal the float64 reference (weights and momentum)."""
    kw = dict(CASES[case])
    fields = {k: kw[k] for k in ("momentum", "weight_decay", "iter_size") if k in kw}
    if "reg" in kw:
        fields["regularization_type"] = kw["reg"]
    if "clip" in kw:
        fields["clip_gradients"] = kw["clip"]
    solver = SGDSolver(make_param(**fields))
    solver.step(5)
    assert solver.iter == 5
    w, v = reference(5, **kw)
    for blob, expected in zip(solver.net.learnable_params, w, strict=True):
        np.testing.assert_allclose(blob.data, expected, rtol=2e-5, atol=1e-6)
    for hist, expected in zip(solver.history, v, strict=True):
        np.testing.assert_allclose(hist, expected, rtol=2e-5, atol=1e-6)
    assert solver.net.calls == 5 * kw.get("iter_size", 1)


def test_lr_and_decay_multipliers():
    """lr_mult scales the rate and decay_mult the decay, per parameter."""
    FakeNet.params_lr, FakeNet.params_weight_decay = [0.5, 0.0], [2.0, 1.0]
    try:
        solver = SGDSolver(make_param(momentum=0.9, weight_decay=0.1))
        solver.step(3)
        w, _ = reference(3, momentum=0.9, weight_decay=0.1, lr_mult=(0.5, 0.0),
                         decay_mult=(2.0, 1.0))
    finally:
        FakeNet.params_lr, FakeNet.params_weight_decay = [1.0, 2.0], [1.0, 0.0]
    np.testing.assert_allclose(solver.net.learnable_params[0].data, w[0], rtol=2e-5)
    np.testing.assert_array_equal(solver.net.learnable_params[1].data, INIT[1])  # lr_mult 0


def test_history_is_one_array_per_param_in_param_order():
    """SGD keeps one momentum array per learnable parameter, shaped like it."""
    solver = SGDSolver(make_param())
    assert [h.shape for h in solver.history] == [a.shape for a in INIT]
    assert all(h.dtype == np.float32 for h in solver.history)


def test_apply_update_counts_the_update_and_lr_property():
    """apply_update increments iter (pycaffe); solver.lr follows the schedule."""
    solver = SGDSolver(make_param())
    assert solver.lr == pytest.approx(0.1)
    solver.net.forward_backward()
    solver.apply_update()
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    solver.apply_update()
    assert solver.iter == 2
    assert solver.lr == pytest.approx(0.05)


def test_unknown_regularization_type():
    """An unknown regularization_type is refused when the solver is built."""
    with pytest.raises(SolverError, match="regularization_type 'L3'"):
        SGDSolver(make_param(regularization_type="L3", weight_decay=0.1))


def test_callbacks_run_in_order():
    """add_callback: on_start before forward/backward, on_gradients_ready before the update."""
    events = []
    solver = SGDSolver(make_param())
    solver.add_callback(lambda: events.append(("start", solver.net.calls)),
                        lambda: events.append(("ready", solver.net.calls, solver.iter)))
    solver.step(2)
    assert events == [("start", 0), ("ready", 1, 0), ("start", 1), ("ready", 2, 1)]
