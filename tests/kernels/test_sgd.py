"""The compiled SGD step is bit-identical to the NumPy update (regularize, momentum, apply)
that tests/solver/test_sgd.py checks against Caffe's formulas."""

import numpy as np
import pytest

from brewnet.proto import caffe_pb2
from brewnet.solver import SGDSolver
from tests.solver.fakes import FakeNet

pytest.importorskip("numba")


@pytest.mark.parametrize("decay", [0.0, 5e-4])
def test_step_matches_numpy_sequence_bit_for_bit(decay):
    """diff += λw; V = μV + rate·diff; diff = V; w -= V, each rounded to float32 in that
    order (no fused multiply-add)."""
    from brewnet.kernels.sgd import sgd_step

    rng = np.random.default_rng(5)
    w, g, v = (rng.standard_normal((50, 37)).astype(np.float32) for _ in range(3))
    lam, mu, rate = np.float32(decay), np.float32(0.9), np.float32(0.01) * np.float32(2)
    want_w, want_g, want_v = w.copy(), g.copy(), v.copy()
    if lam:
        want_g += lam * want_w
    want_v *= mu
    want_v += want_g * rate
    want_g[...] = want_v
    want_w -= want_g
    sgd_step(w, g, v, lam, mu, rate)
    for got, want in ((w, want_w), (g, want_g), (v, want_v)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_solver_takes_the_kernel_only_where_it_applies(monkeypatch, reg):
    """Plain SGD with L2 decay uses the fused step, L1 keeps the NumPy body; both leave the
    same weights, diffs and history as the NumPy path."""
    monkeypatch.setattr("brewnet.solver.solver.Net", FakeNet)
    results = []
    for compiled in (False, True):
        monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
        p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="step", gamma=0.5, stepsize=2,
                                      max_iter=100, momentum=0.9, weight_decay=0.05,
                                      regularization_type=reg)
        p.net_param.name = "fake"
        solver = SGDSolver(p)
        assert solver._fused_step_applies() == (compiled and reg == "L2")
        solver.step(5)
        params = solver.net.learnable_params
        results.append([a.copy() for b in params for a in (b.data, b.diff)]
                       + [h.copy() for h in solver.history])
    for got, want in zip(results[1], results[0], strict=True):
        np.testing.assert_array_equal(got, want)
