"""Caffe's five adaptive update rules (Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) against
their formulas, stepped on a tiny real net (Input → InnerProduct → SoftmaxWithLoss) and
compared with a float64 NumPy computation written here from the formulas: histories, lr_mult,
decay_mult, L1/L2 weight decay and a stepped learning rate. Also: the ``type`` strings and the
legacy ``solver_type`` enum pick each class, and the settings Caffe refuses are refused."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet import solver as solvers
from brewnet.errors import SolverError
from brewnet.proto import caffe_pb2

N, D, K = 6, 5, 3
LR_MULT = (1.0, 2.0)
DECAY_MULT = (1.0, 0.5)

NET = f"""
name: "tiny"
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: {N} dim: {D} }} }} }}
layer {{ name: "y" type: "Input" top: "y" input_param {{ shape {{ dim: {N} }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  param {{ lr_mult: {LR_MULT[0]} decay_mult: {DECAY_MULT[0]} }}
  param {{ lr_mult: {LR_MULT[1]} decay_mult: {DECAY_MULT[1]} }}
  inner_product_param {{ num_output: {K} weight_filler {{ type: "gaussian" std: 0.5 }}
    bias_filler {{ type: "uniform" min: -0.5 max: 0.5 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" }}
"""

_rng = np.random.default_rng(3)
X = _rng.normal(size=(N, D)).astype(np.float32)
Y = np.array([0, 1, 2, 1, 0, 2], np.float32)

# Each rule's own settings (base_lr chosen so the steps are of a sensible size).
RULES = {
    "Nesterov": (solvers.NesterovSolver, {"base_lr": 0.1, "momentum": 0.9}),
    "AdaGrad": (solvers.AdaGradSolver, {"base_lr": 0.1}),
    "RMSProp": (solvers.RMSPropSolver, {"base_lr": 0.05, "rms_decay": 0.9, "delta": 1e-6}),
    "AdaDelta": (solvers.AdaDeltaSolver, {"base_lr": 1.0, "momentum": 0.95, "delta": 1e-4}),
    "Adam": (solvers.AdamSolver, {"base_lr": 0.05, "momentum": 0.9, "momentum2": 0.99}),
}
DECAY = {"none": {}, "L2": {"weight_decay": 0.05},
         "L1": {"weight_decay": 0.05, "regularization_type": "L1"}}
STEPS = 6


def make_param(rule: str, **extra) -> caffe_pb2.SolverParameter:
    """The rule's solver with a ``step`` schedule (rate halves every 2 iterations)."""
    p = caffe_pb2.SolverParameter(type=rule, lr_policy="step", gamma=0.5, stepsize=2,
                                  max_iter=100, random_seed=11, **RULES[rule][1])
    for k, v in extra.items():
        setattr(p, k, v)
    text_format.Parse(NET, p.net_param)
    return p


def build(param: caffe_pb2.SolverParameter):
    solver = solvers.get_solver(param)
    solver.net.blobs["x"].data[...] = X
    solver.net.blobs["y"].data[...] = Y
    return solver


def gradients(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """dL/dW, dL/db and L for L = mean over samples of −log softmax(x·Wᵀ + b)[y]."""
    x = X.astype(np.float64)
    z = x @ w.T + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(K)[Y.astype(int)]
    loss = -np.log(p[onehot.astype(bool)]).mean()
    dz = (p - onehot) / N
    return dz.T @ x, dz.sum(axis=0), loss


def reference(rule: str, w0: list[np.ndarray], steps: int, param: caffe_pb2.SolverParameter):
    """The rule written out from its formula in float64: final weights, the histories in
    SolverState order, and each step's loss."""
    p = param
    w = [a.astype(np.float64) for a in w0]
    slots = 2 if rule in ("AdaDelta", "Adam") else 1
    hist = [np.zeros_like(a) for _ in range(slots) for a in w]
    n = len(w)
    losses = []
    for t in range(steps):
        rate = p.base_lr * p.gamma ** (t // p.stepsize)
        gw, gb, loss = gradients(*w)
        losses.append(loss)
        for i, g in enumerate((gw, gb)):
            lam = p.weight_decay * DECAY_MULT[i]
            g = g + lam * (w[i] if p.regularization_type == "L2" else np.sign(w[i]))
            lr = rate * LR_MULT[i]
            mu, delta = p.momentum, p.delta
            if rule == "Nesterov":
                old = hist[i]
                hist[i] = mu * old + lr * g
                step = (1 + mu) * hist[i] - mu * old
            elif rule == "AdaGrad":
                hist[i] = hist[i] + g * g
                step = lr * g / (np.sqrt(hist[i]) + delta)
            elif rule == "RMSProp":
                rho = p.rms_decay
                hist[i] = rho * hist[i] + (1 - rho) * g * g
                step = lr * g / (np.sqrt(hist[i]) + delta)
            elif rule == "AdaDelta":
                hg, hu = hist[i], hist[n + i]
                hg = mu * hg + (1 - mu) * g * g
                u = g * np.sqrt((hu + delta) / (hg + delta))
                hu = mu * hu + (1 - mu) * u * u
                hist[i], hist[n + i] = hg, hu
                step = lr * u
            else:  # Adam
                b1, b2, tt = p.momentum, p.momentum2, t + 1
                hist[i] = b1 * hist[i] + (1 - b1) * g
                hist[n + i] = b2 * hist[n + i] + (1 - b2) * g * g
                step = (lr * np.sqrt(1 - b2 ** tt) / (1 - b1 ** tt) * hist[i]
                        / (np.sqrt(hist[n + i]) + delta))
            w[i] = w[i] - step
    return w, hist, losses


@pytest.mark.parametrize("decay", DECAY)
@pytest.mark.parametrize("rule", RULES)
def test_rule_matches_formula(rule, decay):
    """Several steps of each rule equal its formula (float64 reference): weights, every
    history array in SolverState order (all of slot 0, then slot 1), and the losses; with a
    changing rate, lr_mult 1/2, decay_mult 1/0.5 and no/L2/L1 decay."""
    param = make_param(rule, **DECAY[decay])
    solver = build(param)
    try:
        assert type(solver) is RULES[rule][0]
        params = solver.net.learnable_params
        w0 = [np.array(b.data) for b in params]
        losses = []
        for _ in range(STEPS):
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        w, hist, want_losses = reference(rule, w0, STEPS, solver.param)
        np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
        for blob, expected in zip(params, w, strict=True):
            assert blob.data.dtype == np.float32
            np.testing.assert_allclose(blob.data, expected, rtol=1e-4, atol=1e-5)
        assert len(solver.history) == len(hist)
        for got, expected in zip(solver.history, hist, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    finally:
        solver.close()


def test_rules_differ_from_sgd():
    """Sanity for the reference: each rule's first steps differ from plain SGD's."""
    sgd = build(make_param("Nesterov", type="SGD"))
    try:
        assert type(sgd) is solvers.SGDSolver
        sgd.step(2)
        for rule in RULES:
            solver = build(make_param(rule))
            try:
                solver.step(2)
                assert not np.allclose(solver.net.learnable_params[0].data,
                                       sgd.net.learnable_params[0].data)
            finally:
                solver.close()
    finally:
        sgd.close()


def test_adam_bias_correction_at_t1():
    """Adam's first step is ±local_rate per weight (m/√v = g/|g| once corrected), up to ε."""
    solver = build(make_param("Adam", base_lr=0.01))
    try:
        w0 = [np.array(b.data) for b in solver.net.learnable_params]
        solver.step(1)
        for i, (blob, before) in enumerate(zip(solver.net.learnable_params, w0, strict=True)):
            step = before - blob.data
            np.testing.assert_allclose(np.abs(step), 0.01 * LR_MULT[i], rtol=1e-4)
    finally:
        solver.close()


LEGACY = {"SGD": ("SGD", solvers.SGDSolver), "NESTEROV": ("Nesterov", solvers.NesterovSolver),
          "ADAGRAD": ("AdaGrad", solvers.AdaGradSolver),
          "RMSPROP": ("RMSProp", solvers.RMSPropSolver),
          "ADADELTA": ("AdaDelta", solvers.AdaDeltaSolver), "ADAM": ("Adam", solvers.AdamSolver)}


@pytest.mark.parametrize("enum_name", LEGACY)
def test_type_string_and_legacy_enum_pick_the_class(enum_name, tmp_path):
    """get_solver builds the class named by ``type:`` and by the legacy ``solver_type`` enum
    (upgraded when the file is read)."""
    (tmp_path / "net.prototxt").write_text(NET)
    type_name, cls = LEGACY[enum_name]
    for line in (f'type: "{type_name}"', f"solver_type: {enum_name}"):
        path = tmp_path / "solver.prototxt"
        path.write_text(f'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n{line}\n')
        solver = solvers.get_solver(str(path))
        try:
            assert type(solver) is cls
            assert solver.param.type == type_name
        finally:
            solver.close()


@pytest.mark.parametrize("rule", ["AdaGrad", "RMSProp"])
def test_momentum_is_refused(rule):
    """AdaGrad and RMSProp refuse a non-zero momentum (Caffe CHECK-fails), naming the field."""
    with pytest.raises(SolverError, match=f"momentum cannot be used with {rule}"):
        solvers.get_solver(make_param(rule, momentum=0.9))


@pytest.mark.parametrize("rms_decay", [1.0, -0.1])
def test_rms_decay_out_of_range_is_refused(rms_decay):
    """RMSProp needs 0 ≤ rms_decay < 1."""
    with pytest.raises(SolverError, match="rms_decay must be in"):
        solvers.get_solver(make_param("RMSProp", rms_decay=rms_decay))


@pytest.mark.parametrize("rule", RULES)
def test_restore_continues_exactly(rule, tmp_path):
    """Snapshot after 3 steps, restore into a fresh solver and step 3 more: the losses and
    weights equal those of 6 uninterrupted steps, bit for bit; the .solverstate holds the
    histories in SolverState order (AdaDelta/Adam: all of slot 0, then all of slot 1)."""
    full = build(make_param(rule, weight_decay=0.01, snapshot_prefix=str(tmp_path / "a")))
    resumed = build(make_param(rule, weight_decay=0.01, snapshot_prefix=str(tmp_path / "b")))
    try:
        full.step(3)
        _, state_path = full.snapshot()
        state = caffe_pb2.SolverState.FromString(open(state_path, "rb").read())
        assert len(state.history) == len(full.history)
        for saved, mine in zip(state.history, full.history, strict=True):
            np.testing.assert_array_equal(np.asarray(saved.data, np.float32), mine.ravel())
        want = []
        for _ in range(3):
            full.step(1)
            want.append(float(full.net.blobs["loss"].data))
        resumed.restore(state_path)
        assert resumed.iter == 3
        got = []
        for _ in range(3):
            resumed.step(1)
            got.append(float(resumed.net.blobs["loss"].data))
        assert got == want
        for a, b in zip(full.net.learnable_params, resumed.net.learnable_params, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
        for a, b in zip(full.history, resumed.history, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        full.close()
        resumed.close()
