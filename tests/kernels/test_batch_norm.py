"""The compiled BatchNorm and Scale passes against the NumPy bodies: the per-element arithmetic
is the bodies', the per-channel sums are float64 instead of NumPy's float32 pairwise sums, so
results agree to float32 rounding and are closer to the exact (float64) statistics. The
bodies are checked against numerical
gradients in tests/layers/test_batch_norm.py and test_affine.py."""

import numpy as np
import pytest

from brewnet import set_random_seed
from brewnet.blob import Blob
from tests.gradcheck import blobs_from, make_layer, setup_layer

pytest.importorskip("numba")

BN = 'type: "BatchNorm" batch_norm_param { use_global_stats: false }'
SCALE = ('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" std: 1 } '
         'bias_filler { type: "gaussian" std: 1 } }')


def sample(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2 + 1).astype(np.float32)


def run(monkeypatch, text: str, compiled: bool, shape=(4, 3, 5, 6)):
    """Top, bottom gradient, parameter gradients (Scale) or running sums (BatchNorm) after a
    forward and two backwards, out of place and then in place."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    x, dy = sample(shape, 5), sample(shape, 6)
    results = []
    for in_place in (False, True):
        set_random_seed(0)  # the same Scale parameters every time
        layer = make_layer(text)
        bottom = blobs_from(x)
        top = bottom if in_place else [Blob()]
        layer.set_up(bottom, top)
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.forward(bottom, top)
        results.append(top[0].data.copy())
        top[0].diff[...] = dy
        for _ in range(2 - in_place):  # the same twice out of place: no state overwritten
            if not in_place:
                top[0].diff[...] = dy
            layer.backward(top, [True], bottom)
        results.append(bottom[0].diff.copy())
        results += [b.diff.copy() if text is SCALE else b.data.copy() for b in layer.blobs]
    return results


@pytest.mark.parametrize("text", [BN, SCALE], ids=["BatchNorm", "Scale"])
def test_kernels_match_numpy_bodies(monkeypatch, text):
    """Outputs, gradients and BatchNorm's running sums agree with the bodies to float32
    rounding of the sums, out of place and in place."""
    compiled = run(monkeypatch, text, True)
    body = run(monkeypatch, text, False)
    for a, b in zip(compiled, body, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_batch_norm_statistics_are_float64_sums(monkeypatch):
    """The kernel's normalized output equals (x − mean)/sqrt(var + eps) with the statistics
    summed in float64, to one float32 rounding, on a channel of 200,000 values where float32
    running sums would drift."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", True)
    x = (sample((2, 2, 100000), 7) + 100).astype(np.float32)
    layer = make_layer(BN)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2), keepdims=True)
    want = (x64 - mean) / np.sqrt(((x64 - mean) ** 2).mean(axis=(0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=2e-6)


def unfused(x, dy, scale, bias, slope):
    """BatchNorm's, Scale's and the ReLU's kernels (NumPy's for a leaky ReLU) one after the
    other, in place as in a net: the top, x̂, the statistics, the top's gradient after the
    Scale's backward, the bottom's gradient, and Scale's two gradients."""
    from brewnet.kernels import batch_norm as k
    from brewnet.layers.neuron import relu

    n, c, s = x.shape
    norm, y = np.empty_like(x), np.empty_like(x)
    mean, var, std = np.empty(c, np.float32), np.empty(c, np.float32), np.empty((1, c, 1),
                                                                                np.float32)
    k.forward(x, norm, y, mean, var, std, np.float32(1e-5), 0, c)
    k.scale_forward(y, scale, bias, y, 0, c)
    dz = dy.copy()
    if slope is not None:
        relu(np, y, y, slope)
        dz *= np.where(y > 0, np.float32(1), slope)
    grads = np.zeros((2, c), np.float32)
    g = np.empty_like(dz)
    k.scale_backward(dz, norm, scale, grads[0], grads[1], g, 0, c)
    dx = np.empty_like(x)
    k.backward(g, norm, std, dx, 0, c)
    return y, norm, mean, var, std, g, dx, grads


CHANNEL_RANGES = [(0, 1), (1, 4)]


@pytest.mark.parametrize("slope", [None, 0.0, 0.1], ids=["no-relu", "relu", "leaky"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_folded_scale_and_relu_match_the_three_kernels(slope, bias):
    """``forward_affine`` leaves the top, x̂ and the statistics of BatchNorm's, Scale's and
    the ReLU's passes bit for bit; ``affine_backward`` their gradients (bottom, Scale's
    factor and bias, the top's as the Scale leaves it) to float32 rounding, also writing the
    bottom's gradient in place over the top's. The fused kernels run as two calls over
    channels 0:1 and 1:4 (how a layer splits them over the cores), the unfused ones as one."""
    from brewnet.kernels import batch_norm as k

    x, dy = sample((3, 4, 50), 1), sample((3, 4, 50), 2)
    scale = sample(4, 3)
    b = sample(4, 4) if bias else np.empty(0, np.float32)
    slope = None if slope is None else np.float32(slope)
    y, norm, mean, var, std, g, dx, grads = unfused(x, dy, scale, b, slope)
    nan = np.float32(np.nan) if slope is None else slope
    top = x.copy()  # in place
    mine = [np.empty_like(x), np.empty(4, np.float32), np.empty(4, np.float32),
            np.empty((1, 4, 1), np.float32)]
    for first, last in CHANNEL_RANGES:
        k.forward_affine(top, mine[0], top, mine[1], mine[2], mine[3], np.float32(1e-5), scale,
                         b, nan, first, last)
    for got, want in zip([top, *mine], [y, norm, mean, var, std], strict=True):
        np.testing.assert_array_equal(got, want)
    empty = np.empty((0, 0, 0), np.float32)
    fused_grads = np.zeros((2, 4), np.float32)
    diff, dtop = dy.copy(), dy.copy()
    out = np.empty_like(x)
    for first, last in CHANNEL_RANGES:
        k.affine_backward(dtop, empty if slope is None else y, norm, std, scale, nan,
                          fused_grads[0], fused_grads[1], out, "scaled", first, last)
        k.affine_backward(diff, empty if slope is None else y, norm, std, scale, nan,
                          np.empty(0, np.float32), np.empty(0, np.float32), diff, "", first,
                          last)
    np.testing.assert_allclose(fused_grads, grads, rtol=1e-5)
    np.testing.assert_array_equal(dtop, g)
    for got in (out, diff):
        assert np.abs(got - dx).max() <= 1e-6 * np.abs(dx).max()  # measured: 6e-8


def test_one_pass_statistics_do_not_cancel_far_from_zero():
    """Mean and variance from one read (sums of the values shifted by a value of their
    channel) equal float64's two-pass statistics to float32 rounding, also where the mean is
    1e6 spreads away from 0: raw sums of squares would cancel there (relative error ~1e-4)."""
    from brewnet.kernels.batch_norm import statistics

    rng = np.random.default_rng(0)
    for offset, spread in [(0, 1), (-300, 5), (1e4, 1e-2), (1e6, 1)]:
        x = (rng.standard_normal((4, 3, 5000)) * spread + offset).astype(np.float32)
        mean, var = np.empty(3, np.float32), np.empty(3, np.float32)
        std = np.empty((1, 3, 1), np.float32)
        statistics(x, mean, var, std, np.float32(1e-5), 0, 3)
        x64 = x.astype(np.float64)
        np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1.2e-7)
        np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=2.4e-7)
        np.testing.assert_allclose(std.reshape(-1), np.sqrt(var + np.float32(1e-5)), rtol=1e-7)
