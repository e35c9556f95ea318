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


def _chain_net(scale_top: str, between: str = "") -> str:
    """conv-free ResNet chain: BatchNorm in place on x, optionally a layer in place after it,
    then Scale (in place when ``scale_top`` is "x"), a ReLU and a Euclidean loss."""
    return f"""
name: "chain"
force_backward: true
layer {{ name: "in" type: "Input" top: "x" top: "y"
  input_param {{ shape {{ dim: 4 dim: 3 dim: 5 }} shape {{ dim: 4 dim: 3 dim: 5 }} }} }}
layer {{ name: "bn" type: "BatchNorm" bottom: "x" top: "x" }}
{between}
layer {{ name: "sc" type: "Scale" bottom: "x" top: "{scale_top}"
  scale_param {{ bias_term: true filler {{ type: "gaussian" std: 1 }}
                 bias_filler {{ type: "gaussian" std: 1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "{scale_top}" top: "{scale_top}" }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "{scale_top}" bottom: "y" top: "loss" }}
"""


def _run_chain(text: str, x: np.ndarray, y: np.ndarray):
    """The net's loss, input gradient and Scale's two parameter gradients after one pass,
    the layers run one by one (brewnet.net.fusion would fold the in-place chain)."""
    from brewnet import set_random_seed
    from brewnet.net import Net

    set_random_seed(3)  # the fillers: the same Scale weights in every net
    net = Net(parse_text(text, caffe_pb2.NetParameter()), phase=TRAIN, fuse=False)
    net.blobs["x"].data[...] = x
    net.blobs["y"].data[...] = y
    loss = net.forward()["loss"]
    net.backward()
    sc = net.params["sc"]
    return net, (float(loss), net.blobs["x"].diff.copy(), sc[0].diff.copy(), sc[1].diff.copy())


def test_scale_in_place_after_batch_norm_reads_its_kept_batch():
    """Scale in place directly on BatchNorm's top keeps no copy of its input: it reads the
    normalized batch BatchNorm keeps (saving one activation per pair), and the loss and every
    gradient equal, bit for bit, those of the same chain with Scale out of place."""
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    paired, got = _run_chain(_chain_net("x"), x, y)
    _, want = _run_chain(_chain_net("z"), x, y)
    sc, bn = paired.layer_dict["sc"], paired.layer_dict["bn"]
    assert sc._copy is None and np.shares_memory(sc._input, bn._norm)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scale_after_another_in_place_layer_keeps_its_own_copy():
    """With a ReLU in place between them, Scale's input is not BatchNorm's normalized batch:
    it copies its input (a wrong pairing would give s a gradient from the unrectified
    values), and the loss and Scale's gradients match the out-of-place chain exactly (the
    input gradient differs by Caffe's rules: Scale in place overwrites what ReLU's backward
    reads)."""
    relu = 'layer { name: "r0" type: "ReLU" bottom: "x" top: "x" }'
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    paired, got = _run_chain(_chain_net("x", relu), x, y)
    _, want = _run_chain(_chain_net("z", relu), x, y)
    assert paired.layer_dict["sc"]._copy is not None
    for k in (0, 2, 3):
        np.testing.assert_array_equal(got[k], want[k])


def test_batch_norm_top_read_twice_is_not_paired():
    """When another layer also reads BatchNorm's top, a Split serves both readers and Scale
    reads a split copy out of place (in place would be a second producer of the blob, an
    error in Caffe too): nothing is paired or copied, and the gradients are the plain
    chain's (the other reader is silenced)."""
    power = ('layer { name: "p" type: "Power" bottom: "x" top: "p" }\n'
             'layer { name: "s2" type: "Silence" bottom: "p" }')
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    net, got = _run_chain(_chain_net("z", power), x, y)
    sc = net.layer_dict["sc"]
    assert net.plan.steps[2].layer.type == "Split" and sc._producer is None
    assert sc._input is None and sc._copy is None
    _, want = _run_chain(_chain_net("z"), x, y)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scale_forward_started_after_batch_norm_copies_the_current_input():
    """A forward started at Scale (pycaffe's ``forward(start=...)``) after a full pass finds
    in the blob what ReLU left there, not BatchNorm's batch: BatchNorm hands its batch out
    once per forward, so Scale copies the blob and s's gradient is Σ dy·(that blob)."""
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    net, _ = _run_chain(_chain_net("x"), x, y)
    current = net.blobs["x"].data.copy()  # ReLU's output, in place
    assert current.min() == 0
    net.forward(start="sc")
    net.params["sc"][0].diff[...] = 0
    net.backward(start="relu", end="sc")
    want = (net.blobs["x"].diff / net.params["sc"][0].data.reshape(1, 3, 1) * current).sum(
        axis=(0, 2))
    np.testing.assert_allclose(net.params["sc"][0].diff, want, rtol=1e-4, atol=1e-5)


def test_paired_chain_gradient_is_numerical():
    """The paired BatchNorm + Scale chain's gradients with respect to the input and to s
    match central differences of the net's loss."""
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    net, (_, dx, ds, _) = _run_chain(_chain_net("x"), x, y)
    s = net.params["sc"][0].data
    h = 1e-2

    def loss_at(xv: np.ndarray) -> float:
        net.blobs["x"].data[...] = xv
        return float(net.forward()["loss"])

    for idx in [(0, 0, 0), (1, 2, 3), (3, 1, 4)]:
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        np.testing.assert_allclose((loss_at(plus) - loss_at(minus)) / (2 * h), dx[idx],
                                   rtol=2e-2, atol=2e-3)
    for c in range(3):
        base = s[c]
        s[c] = base + h
        up = loss_at(x)
        s[c] = base - h
        down = loss_at(x)
        s[c] = base
        np.testing.assert_allclose((up - down) / (2 * h), ds[c], rtol=2e-2, atol=2e-3)


def test_scale_forward_after_the_user_rewrote_batch_norm_top_reads_the_new_values():
    """``forward(end="bn")``, then values written into the blob (``net.blobs[...]``), then
    ``forward(start="sc")``: Scale's input is what the user wrote, and s's gradient is
    Σ dy·(those values), as Caffe's Scale, which copies its input at forward; BatchNorm's
    normalized batch from the earlier partial pass is not Scale's input any more."""
    x, y = sample((4, 3, 5), seed=1), sample((4, 3, 5), seed=2)
    net, _ = _run_chain(_chain_net("x"), x, y)
    net.forward(end="bn")
    written = sample((4, 3, 5), seed=5)
    net.blobs["x"].data[...] = written
    net.forward(start="sc")
    net.params["sc"][0].diff[...] = 0
    net.backward(start="relu", end="sc")
    want = (net.blobs["x"].diff / net.params["sc"][0].data.reshape(1, 3, 1) * written).sum(
        axis=(0, 2))
    np.testing.assert_allclose(net.params["sc"][0].diff, want, rtol=1e-4, atol=1e-5)
