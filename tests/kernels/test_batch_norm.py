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
