"""BatchNorm: batch statistics and Caffe's running sums in TRAIN, the stored statistics with
use_global_stats (the TEST default), both gradients, and lr_mult 0 on its three blobs."""

import numpy as np
import pytest

from brewnet.errors import NetError
from brewnet.net import TRAIN
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import SGDSolver
from tests.gradcheck import (
    blobs_from,
    check_gradient,
    forward_backward,
    make_layer,
    run_in_place,
    setup_layer,
)


def sample(shape=(3, 2, 2, 2), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2 + 1).astype(np.float32)


def batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance over (N, spatial), by explicit loops."""
    n, c = x.shape[:2]
    mean, var = np.zeros(c), np.zeros(c)
    for ch in range(c):
        values = [float(v) for i in range(n) for v in x[i, ch].reshape(-1)]
        mean[ch] = sum(values) / len(values)
        var[ch] = sum((v - mean[ch]) ** 2 for v in values) / len(values)
    return mean, var


def normalize(x: np.ndarray, mean, var, eps=1e-5) -> np.ndarray:
    out = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        out[idx] = (x[idx] - mean[idx[1]]) / np.sqrt(var[idx[1]] + eps)
    return out


def test_blobs_and_forced_lr_mult():
    """Three zeroed blobs (C,), (C,), (1,); setup adds ParamSpecs with lr_mult 0 (Caffe's
    LayerSetUp) so the net never learns them."""
    layer = make_layer('type: "BatchNorm"')
    setup_layer(layer, blobs_from(sample()))
    assert [b.data.shape for b in layer.blobs] == [(2,), (2,), (1,)]
    assert all(np.all(b.data == 0) for b in layer.blobs)
    assert [p.lr_mult for p in layer.param.param] == [0, 0, 0]


def test_nonzero_lr_mult_is_refused():
    """A param spec with lr_mult != 0 is an error naming the fix."""
    layer = make_layer('type: "BatchNorm" param { lr_mult: 1 }')
    with pytest.raises(NetError, match="lr_mult 0"):
        setup_layer(layer, blobs_from(sample()))


def test_use_global_stats_defaults_to_phase():
    """use_global_stats defaults to phase == TEST; an explicit value wins."""
    for phase, text, want in [(caffe_pb2.TRAIN, "", False), (caffe_pb2.TEST, "", True),
                              (caffe_pb2.TEST, "batch_norm_param { use_global_stats: false }",
                               False)]:
        layer = make_layer(f'type: "BatchNorm" {text}', phase)
        setup_layer(layer, blobs_from(sample()))
        assert layer.use_global_stats is want


def test_train_forward_and_running_sums():
    """TRAIN: y = (x − μ_B)/sqrt(σ²_B + eps); s ← λs + 1, mean ← λ·mean + μ_B,
    var ← λ·var + m/(m−1)·σ²_B over two batches."""
    layer = make_layer('type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 '
                       'eps: 1e-3 }')
    x1, x2 = sample(seed=0), sample(seed=1)
    bottom = blobs_from(x1)
    top = setup_layer(layer, bottom)
    s, mean_sum, var_sum = 0.0, np.zeros(2), np.zeros(2)
    m = 3 * 4
    for x in (x1, x2):
        bottom[0].data[...] = x
        layer.forward(bottom, top)
        mu, var = batch_stats(x)
        np.testing.assert_allclose(top[0].data, normalize(x, mu, var, 1e-3), rtol=1e-4,
                                   atol=1e-5)
        s = 0.9 * s + 1
        mean_sum = 0.9 * mean_sum + mu
        var_sum = 0.9 * var_sum + m / (m - 1) * var
        np.testing.assert_allclose(layer.blobs[2].data, [s], rtol=1e-6)
        np.testing.assert_allclose(layer.blobs[0].data, mean_sum, rtol=1e-5)
        np.testing.assert_allclose(layer.blobs[1].data, var_sum, rtol=1e-5)


def test_global_stats_forward():
    """Global stats: μ = mean_sum/s, σ² = var_sum/s; s == 0 gives factor 0 (μ = σ² = 0)."""
    layer = make_layer('type: "BatchNorm"', caffe_pb2.TEST)
    x = sample()
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(1e-5), rtol=1e-5)
    layer.blobs[0].data[...] = [2.0, -1.0]
    layer.blobs[1].data[...] = [8.0, 0.5]
    layer.blobs[2].data[...] = 2.0
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, normalize(x, [1.0, -0.5], [4.0, 0.25]), rtol=1e-5)
    assert layer.blobs[2].data[0] == 2.0  # not updated


def test_global_stats_in_place_keeps_no_copy():
    """With fixed statistics the result is written straight into the (in-place) top and no
    normalized copy is kept, yet the gradient is still dy / sqrt(σ² + eps)."""
    layer = make_layer('type: "BatchNorm"', caffe_pb2.TEST)
    x, dy = sample(), sample(seed=4)
    (blob,) = blobs_from(x)
    layer.setup([blob], [blob])
    layer.blobs[1].data[...] = [3.0, 0.5]
    layer.blobs[2].data[...] = 1.0
    layer.reshape([blob], [blob])
    assert layer._norm is None
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, normalize(x, [0.0, 0.0], [3.0, 0.5]), rtol=1e-5)
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    want = dy / np.sqrt(np.array([3.0, 0.5]) + 1e-5).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(blob.diff, want, rtol=1e-5)


def test_works_on_2d_bottoms():
    """(N, C) bottoms normalize per column (spatial size 1)."""
    x = sample((5, 3))
    layer = make_layer('type: "BatchNorm"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("global_stats", [False, True])
def test_gradient(global_stats):
    """The full batch-statistics gradient and the global-stats one (dy/sqrt(σ² + eps)) match
    numerical gradients."""
    layer = make_layer(f'type: "BatchNorm" batch_norm_param {{ use_global_stats: '
                       f'{str(global_stats).lower()} }}')
    bottom = blobs_from(sample((3, 2, 2)))
    top = setup_layer(layer, bottom)
    layer.blobs[0].data[...] = [1.0, -2.0]
    layer.blobs[1].data[...] = [3.0, 0.5]
    layer.blobs[2].data[...] = 1.0
    if not global_stats:
        # the running sums change on every forward; the output does not depend on them
        check_gradient(layer, bottom, top, check_params=False, stepsize=1e-2, threshold=2e-2)
    else:
        check_gradient(layer, bottom, top, check_params=False)


def test_in_place_matches_out_of_place():
    """top == bottom gives the same output and gradient (backward reads the kept y)."""
    x = sample()
    dy = sample(seed=4)
    bottom = blobs_from(x)
    top = forward_backward(make_layer('type: "BatchNorm"'), bottom, dy)
    output, grad = run_in_place(make_layer('type: "BatchNorm"'), x, dy)
    np.testing.assert_allclose(output, top[0].data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, bottom[0].diff, rtol=1e-5, atol=1e-6)


NET = """
name: "bn"
layer { name: "in" type: "Input" top: "x" top: "y"
  input_param { shape { dim: 4 dim: 2 dim: 3 } shape { dim: 4 dim: 2 dim: 3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
  batch_norm_param { moving_average_fraction: 0.5 } }
layer { name: "sc" type: "Scale" bottom: "x" top: "z" scale_param { bias_term: true } }
layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" top: "loss" }
"""


def test_solver_leaves_statistics_alone():
    """In a net the BatchNorm blobs get lr_mult 0: three SGD steps with momentum and weight
    decay change them only by the running-average formula, while Scale learns."""
    p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", momentum=0.9,
                                  weight_decay=0.1, display=0, max_iter=10)
    p.net_param.CopyFrom(parse_text(NET, caffe_pb2.NetParameter()))
    solver = SGDSolver(p)
    net = solver.net
    assert net.phase == TRAIN
    bn = net.params["bn"]
    assert list(net.params_lr[:3]) == [0, 0, 0]
    assert net.layers[1].param_propagate_down == [False, False, False]
    s, mean_sum, var_sum = 0.0, np.zeros(2), np.zeros(2)
    m = 4 * 3
    scale_before = net.params["sc"][0].data.copy()
    for step in range(3):
        x = sample((4, 2, 3), seed=10 + step)
        net.blobs["x"].data[...] = x
        net.blobs["y"].data[...] = sample((4, 2, 3), seed=20 + step)
        solver.step(1)
        mu, var = batch_stats(x)
        s = 0.5 * s + 1
        mean_sum = 0.5 * mean_sum + mu
        var_sum = 0.5 * var_sum + m / (m - 1) * var
        np.testing.assert_allclose(bn[2].data, [s], rtol=1e-6)
        np.testing.assert_allclose(bn[0].data, mean_sum, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn[1].data, var_sum, rtol=1e-5)
    assert not np.allclose(net.params["sc"][0].data, scale_before)
