"""The NaN guard: a diverging run stops with a DivergenceError naming the iteration and the
first layer whose output went non-finite, writes no snapshot of the diverged weights, and
``divergence = "continue"`` trains on to max_iter as Caffe does."""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import DivergenceError, SolverError
from brewnet.layers.base import Layer
from brewnet.layers.registry import _LAYERS, register
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import SGDSolver
from brewnet.solver.divergence import all_finite, first_nonfinite, is_finite

# Diverging on purpose overflows float32: NumPy's warnings say so, expectedly.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# x = 1, target 0, one weight w = 1: loss = w²/2, gradient w. With lr 1e10 and no momentum
# w goes 1 → -1e10 → 1e20, so the loss (1e40/2) overflows float32 in iteration 2's forward
# while the InnerProduct's output (1e20) is still finite.
NET = """
name: "tiny"
layer {{ name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param {{ shape {{ dim: 1 dim: 1 }} shape {{ dim: 1 dim: 1 }}
    data_filler {{ type: "constant" value: {x} }} data_filler {{ type: "constant" value: 0 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param {{ num_output: 1 bias_term: false
    weight_filler {{ type: "constant" value: 1 }} }} }}
{extra}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }}
"""


def tiny_solver_param(tmp_path, base_lr: float = 1e10, x: str = "1", extra: str = "",
                      max_iter: int = 5, snapshot: int = 1) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter(base_lr=base_lr, lr_policy="fixed", momentum=0.0,
                                  max_iter=max_iter, display=1, snapshot=snapshot,
                                  snapshot_prefix=str(tmp_path / "s"))
    p.net_param.CopyFrom(parse_text(NET.format(x=x, extra=extra), caffe_pb2.NetParameter()))
    return p


def snapshots(tmp_path) -> list[str]:
    return sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("s_iter_"))


def test_nonfinite_loss_stops_naming_iteration_and_layer(tmp_path):
    """The loss overflows at iteration 2 in layer 'loss' (its bottom 'ip' still finite): the
    error names both, keeps the iteration-2 snapshot, and writes nothing after it (no
    snapshot_after_train)."""
    solver = SGDSolver(tiny_solver_param(tmp_path))
    with pytest.raises(DivergenceError) as info:
        solver.solve()
    msg = str(info.value)
    assert "\n" not in msg
    assert "iteration 2:" in msg and "the loss is inf" in msg
    assert "top blob 'loss' of layer 'loss' (EuclideanLoss)" in msg
    assert str(tmp_path / "s_iter_2.solverstate") in msg
    assert solver.iter == 2
    assert snapshots(tmp_path) == ["s_iter_1.caffemodel", "s_iter_1.solverstate",
                                   "s_iter_2.caffemodel", "s_iter_2.solverstate"]
    # The kept weights are the last finite ones (the update of iteration 2 never ran).
    assert np.isfinite(solver.net.params["ip"][0].data).all()


def test_first_layer_in_net_order_is_named(tmp_path):
    """Non-finite data makes every top non-finite; the first layer (the data layer) is named,
    at iteration 0, with no snapshot written at all."""
    solver = SGDSolver(tiny_solver_param(tmp_path, x="inf"))
    with pytest.raises(DivergenceError,
                       match=r"iteration 0: the loss is (nan|inf); the first non-finite output "
                             r"is top blob 'x' of layer 'data' \(DummyData\).*no snapshot was "
                             r"written before it"):
        solver.solve()
    assert snapshots(tmp_path) == []


@register
class _PoisonAfterTwo(Layer):
    """Test layer, in place: passes its input through for two forwards, then NaNs."""

    type = "TestPoisonAfterTwo"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.calls = 0

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].reshape_like(bottom[0])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.calls += 1
        scale = np.float32(1) if self.calls <= 2 else np.float32("nan")
        top[0].data[...] = bottom[0].data * scale

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff


def test_in_place_layer_is_blamed_not_its_producer(tmp_path):
    """An in-place layer that turns a finite blob into NaN is named, not the layer that
    produced the blob (the pass is replayed layer by layer to tell them apart)."""
    assert _LAYERS["TestPoisonAfterTwo"] is _PoisonAfterTwo
    extra = ('layer { name: "poison" type: "TestPoisonAfterTwo" bottom: "ip" top: "ip" }')
    solver = SGDSolver(tiny_solver_param(tmp_path, base_lr=0.1, extra=extra))
    with pytest.raises(DivergenceError,
                       match=r"iteration 2: the loss is nan; the first non-finite output is "
                             r"top blob 'ip' of layer 'poison' \(TestPoisonAfterTwo\)"):
        solver.solve()


def test_nonfinite_parameter_after_update_stops(tmp_path):
    """An update that makes a weight infinite (finite loss, infinite rate) stops at once,
    naming the parameter's layer and the iteration of the update; no snapshot of it."""
    solver = SGDSolver(tiny_solver_param(tmp_path, base_lr=float("inf")))
    with pytest.raises(DivergenceError,
                       match=r"iteration 0: parameter 0 of layer 'ip' \(InnerProduct\) became "
                             r"non-finite in the update \(its update was non-finite\)"):
        solver.solve()
    assert snapshots(tmp_path) == []


def test_continue_runs_to_max_iter_and_warns_once(tmp_path, glog):
    """divergence = "continue": Caffe's behaviour, one warning, training and the final
    snapshot go on."""
    solver = SGDSolver(tiny_solver_param(tmp_path, snapshot=0))
    solver.divergence = "continue"
    solver.solve()
    assert solver.iter == 5
    text = glog.getvalue()
    assert text.count("training diverged") == 1
    assert "Iteration 2: training diverged: the loss is inf" in text
    assert "s_iter_5.caffemodel" in " ".join(snapshots(tmp_path))


def test_unknown_divergence_mode(tmp_path):
    """Only "stop" and "continue" are accepted, with a message listing them."""
    solver = SGDSolver(tiny_solver_param(tmp_path))
    with pytest.raises(SolverError, match="unknown divergence mode 'ignore'; use one of: "
                                          "stop, continue"):
        solver.divergence = "ignore"


def test_finiteness_checks():
    """The sum shortcut agrees with an element-wise test, including a finite array whose
    float32 sum overflows."""
    big = np.full(4, 3e38, np.float32)  # finite, but its float32 sum is inf
    nan = np.array([1, np.nan], np.float32)
    inf = np.array([-np.inf, 1], np.float32)
    assert is_finite(big) and is_finite(np.zeros(3, np.float32))
    assert not is_finite(nan) and not is_finite(inf)
    assert all_finite([big, big]) and all_finite([])
    assert not all_finite([big, inf])
    assert first_nonfinite([big, np.ones(2, np.float32), nan, inf]) == 2
    assert first_nonfinite([big]) is None
