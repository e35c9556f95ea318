"""GradientSync in one process, with a stand-in communicator: what is packed, reduced and
written back, when each layer's bucket starts, and that both reduction schedules agree."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from brewnet.parallel.comm import SINGLE
from brewnet.parallel.sync import GradientSync
from brewnet.proto import caffe_pb2

# Three InnerProduct layers; ip3 shares ip1's weights (owner ip1), so ip1's bucket holds them.
NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "x" top: "y"
        dummy_data_param { shape { dim: 4 dim: 6 } shape { dim: 4 dim: 6 }
                           data_filler { type: "gaussian" } data_filler { type: "gaussian" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h1" param { name: "w" }
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h1" top: "h2"
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "ip3" type: "InnerProduct" bottom: "h2" top: "h3" param { name: "w" }
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "h3" bottom: "y" top: "loss" }
"""


class Twins:
    """Two ranks whose other rank computed exactly this rank's gradients: an all-reduce
    doubles the array, so after the 1/2 scaling each gradient must come back unchanged.
    Records the order in which reductions start and what was broadcast."""

    rank, size, engine = 0, 2, "test"

    def __init__(self):
        self.started: list[int] = []
        self.broadcast: list[int] = []

    def start_allreduce(self, array):
        self.started.append(array.size)
        array *= np.float32(2)
        return SINGLE.start_allreduce(array)

    def bcast(self, array):
        self.broadcast.append(array.size)

    def sum_values(self, values):
        return values * 2


def solver(iter_size: int = 1) -> brewnet.Solver:
    param = text_format.Parse(f'base_lr: 0.1 lr_policy: "fixed" max_iter: 2 iter_size: {iter_size} '
                              'random_seed: 5', caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(text_format.Parse(NET, caffe_pb2.NetParameter()))
    return brewnet.SGDSolver(param)


def gradients(s: brewnet.Solver) -> list[np.ndarray]:
    s.net.clear_param_diffs()
    s.net.forward_backward()
    return [p.diff.copy() for p in s.net.learnable_params]


@pytest.mark.parametrize("layer_wise", [True, False])
def test_sum_times_one_over_n_gives_back_equal_gradients(layer_wise):
    """Every learnable gradient goes through the exchange once, in float32, as sum × 1/N."""
    s = solver()
    comm = Twins()
    sync = GradientSync(s, comm)
    assert s.comm is comm
    want = gradients(s)
    sync.on_start()
    if layer_wise:
        for i in reversed(range(len(s.net.layers))):
            sync(i)
    sync.on_gradients_ready()
    for p, w in zip(s.net.learnable_params, want, strict=True):
        np.testing.assert_array_equal(p.diff, w)
    assert sync.gradient_bytes == 4 * sum(p.count for p in s.net.learnable_params)


def test_buckets_start_in_backward_order_as_layers_finish():
    """Layer-wise: ip3 owns nothing (its weights are ip1's), so the buckets are ip3's bias,
    ip2's weights+bias, then ip1's shared weights+bias, each started by its layer's hook."""
    s = solver()
    comm = Twins()
    sync = GradientSync(s, comm)
    sync.on_start()
    sync(4)  # the loss layer owns no parameters
    assert comm.started == []
    sync(3)
    assert comm.started == [6]
    sync(2)
    sync(1)
    assert comm.started == [6, 42, 42]
    sync(0)
    sync.on_gradients_ready()
    assert comm.started == [6, 42, 42]  # nothing left to start


def test_iter_size_reduces_only_after_the_last_pass():
    s = solver(iter_size=2)
    comm = Twins()
    sync = GradientSync(s, comm)
    s.net.after_backward(sync)
    sync.on_start()
    s.net.forward_backward()
    assert comm.started == []
    s.net.forward_backward()
    assert len(comm.started) == 3


def test_bcast_sends_every_learnable_parameter():
    s = solver()
    comm = Twins()
    GradientSync(s, comm).bcast()
    assert comm.broadcast == [p.count for p in s.net.learnable_params]


def test_a_solver_joined_by_callbacks_trains_as_one_process():
    """With twins, the exchange must not change a single bit of the training."""
    alone = solver()  # DummyData draws from the seeded global stream: one solver at a time
    alone.step(2)
    joined = solver()
    sync = GradientSync(joined, Twins())
    joined.add_callback(sync)
    joined.net.after_backward(sync)
    joined.step(2)
    for a, b in zip(alone.net.learnable_params, joined.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
