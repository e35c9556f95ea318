"""Learning-rate policies against hand-computed values (Caffe's SGDSolver::GetLearningRate)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from brewnet.errors import SolverError
from brewnet.proto import caffe_pb2
from brewnet.solver.checks import solver_findings
from brewnet.solver.lr_policy import LR_POLICIES, learning_rate


def f32(x: float) -> float:
    """The value a float field of SolverParameter really holds."""
    return float(np.float32(x))


def solver(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(base_lr=0.01, **fields)


def rate(param, it, current_step=0):
    state = SimpleNamespace(current_step=current_step)
    return learning_rate(param, it, state), state.current_step


@pytest.mark.parametrize("it", [0, 1, 99, 100, 250, 10000])
def test_fixed(it):
    """fixed: base_lr at every iteration."""
    assert rate(solver(lr_policy="fixed"), it)[0] == pytest.approx(0.01, rel=1e-7)


@pytest.mark.parametrize("it,expected", [(0, 0.01), (99, 0.01), (100, 0.001), (250, 0.0001)])
def test_step(it, expected):
    """step: base_lr·γ^⌊iter/stepsize⌋, and current_step = ⌊iter/stepsize⌋."""
    r, step = rate(solver(lr_policy="step", gamma=0.1, stepsize=100), it)
    assert r == pytest.approx(expected, rel=1e-6)
    assert step == it // 100


@pytest.mark.parametrize("it", [0, 1, 10, 1000])
def test_exp(it):
    """exp: base_lr·γ^iter."""
    r, _ = rate(solver(lr_policy="exp", gamma=0.999), it)
    assert r == pytest.approx(f32(0.01) * f32(0.999) ** it, rel=1e-6)


@pytest.mark.parametrize("it", [0, 1, 100, 5000, 10000])
def test_inv(it):
    """inv (LeNet's schedule): base_lr·(1+γ·iter)^(−power)."""
    r, _ = rate(solver(lr_policy="inv", gamma=0.0001, power=0.75), it)
    assert r == pytest.approx(0.01 * (1 + f32(0.0001) * it) ** -0.75, rel=1e-6)


def test_multistep_advances_once_per_call_and_logs(glog):
    """multistep: current_step advances by at most one per call when iter ≥ stepvalue[step],
    logging `MultiStep Status: Iteration N, step = k`; rate = base_lr·γ^current_step."""
    param = solver(lr_policy="multistep", gamma=0.5, stepvalue=[10, 20, 30])
    state = SimpleNamespace(current_step=0)
    assert learning_rate(param, 5, state) == pytest.approx(0.01)
    assert learning_rate(param, 10, state) == pytest.approx(0.005)
    # Jumping past two steps advances only one per call, as Caffe.
    assert learning_rate(param, 35, state) == pytest.approx(0.0025)
    assert learning_rate(param, 35, state) == pytest.approx(0.00125)
    assert learning_rate(param, 36, state) == pytest.approx(0.00125)
    assert state.current_step == 3
    lines = [line.split("] ", 1)[1] for line in glog.getvalue().splitlines()]
    assert lines == ["MultiStep Status: Iteration 10, step = 1",
                     "MultiStep Status: Iteration 35, step = 2",
                     "MultiStep Status: Iteration 35, step = 3"]


@pytest.mark.parametrize("it", [0, 1, 500, 999, 1000])
def test_poly(it):
    """poly: base_lr·(1 − iter/max_iter)^power."""
    r, _ = rate(solver(lr_policy="poly", power=2.0, max_iter=1000), it)
    assert r == pytest.approx(0.01 * (1 - it / 1000) ** 2, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("it", [0, 50, 100, 150])
def test_sigmoid(it):
    """sigmoid: base_lr/(1+exp(−γ(iter − stepsize)))."""
    r, _ = rate(solver(lr_policy="sigmoid", gamma=-0.05, stepsize=100), it)
    assert r == pytest.approx(0.01 / (1 + math.exp(f32(0.05) * (it - 100))), rel=1e-5)


def test_sigmoid_saturates_without_overflow():
    """Far past the step exp overflows in float; the rate is then exactly 0, as in C++."""
    assert rate(solver(lr_policy="sigmoid", gamma=-0.05, stepsize=100), 100000)[0] == 0.0


def test_unknown_policy_lists_valid_ones():
    """An unknown policy is an error naming it and every valid policy."""
    with pytest.raises(SolverError) as e:
        rate(solver(lr_policy="cosine"), 0)
    assert "'cosine'" in str(e.value)
    assert all(p in str(e.value) for p in LR_POLICIES)


@pytest.mark.parametrize("fields,needed", [
    ({"lr_policy": "step", "gamma": 0.1}, "stepsize"),
    ({"lr_policy": "step", "gamma": 0.1, "stepsize": -5}, "stepsize"),
    ({"lr_policy": "multistep", "gamma": 0.1}, "stepvalue"),
    ({"gamma": 0.1}, "lr_policy is not set"),
])
def test_missing_settings_are_errors(fields, needed):
    """step without stepsize > 0 (Caffe's CHECK_GT), multistep without stepvalue (it would
    never step), no lr_policy: SolverError naming the field."""
    errors = solver_findings(solver(**fields)).errors
    assert errors and isinstance(errors[0], SolverError) and needed in str(errors[0])


@pytest.mark.parametrize("fields", [
    {"lr_policy": "sigmoid", "gamma": -0.1},
    {"lr_policy": "multistep", "gamma": -0.5, "stepvalue": [3]},
    {"lr_policy": "step", "gamma": -1.0, "stepsize": 10},
    {"lr_policy": "poly", "power": 2.0},
])
def test_settings_caffe_accepts_are_accepted(fields):
    """No stricter than Caffe: sigmoid without stepsize uses the default 0, negative γ is
    used as given, poly without max_iter is allowed (Caffe checks none of these)."""
    assert not solver_findings(solver(**fields)).errors


def test_sigmoid_default_stepsize_is_zero():
    """sigmoid without stepsize centres the curve at iteration 0: rate(0) = base_lr/2."""
    param = solver(lr_policy="sigmoid", gamma=-0.1)
    assert rate(param, 0)[0] == np.float32(param.base_lr) / np.float32(2)
