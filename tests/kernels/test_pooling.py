"""The compiled pooling kernels give what the NumPy body gives (itself tested against Caffe's
loops in tests/layers/test_pooling.py): same tops, argmax masks and bottom gradients."""

import numpy as np
import pytest

from brewnet.proto import caffe_pb2
from tests.gradcheck import blobs_from, make_layer, setup_layer
from tests.layers.test_pooling import CASES

pytest.importorskip("numba")

EXTRA = [
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (2, 3, 8, 9)),  # rows no window reaches
    ("kernel_size: 2 stride: 4 pad: 1", (1, 2, 9, 9)),  # stride > kernel, padded
    ("kernel_h: 17 kernel_w: 16 stride: 1", (1, 1, 18, 17)),  # offsets past a byte
    # Stride 1 and padded, under FLAT_BELOW wide: the values-only kernel's whole-plane runs
    # (GoogLeNet's inception pools; a run past 64 values; asymmetric).
    ("kernel_size: 3 stride: 1 pad: 1", (2, 3, 7, 9)),
    ("kernel_size: 3 stride: 1 pad: 1 round_mode: CEIL", (1, 2, 12, 13)),
    ("kernel_h: 2 kernel_w: 3 stride: 1 pad_h: 1 pad_w: 0", (1, 2, 5, 6)),
]


def run(monkeypatch, compiled: bool, fields: str, method: str, x: np.ndarray, dy_seed: int):
    """(top, mask or None, bottom diff) with the kernels on or off."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: {method} {fields} }}')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom, num_top=2 if method == "MAX" else 1)
    assert layer._fast == compiled
    for _ in range(2):  # twice: scratch reused across iterations must not leak
        layer.forward(bottom, top)
        top[0].diff[...] = np.random.default_rng(dy_seed).standard_normal(top[0].shape)
        bottom[0].diff[...] = np.nan
        layer.backward(top, [True], bottom)
    mask = top[1].data.copy() if method == "MAX" else None
    return top[0].data.copy(), mask, bottom[0].diff.copy()


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("fields", [c[0] for c in CASES] + [e[0] for e in EXTRA])
def test_kernel_matches_numpy_body(monkeypatch, method, ties, fields):
    """Padding (never wins), clipping, stride > kernel, overlap, FLOOR rounding; with ties the
    first maximum in row-major window order wins in both (Caffe's strict >)."""
    shape = {c[0]: c[1] for c in CASES} | dict(EXTRA)
    rng = np.random.default_rng(len(fields))
    x = rng.standard_normal(shape[fields]).astype(np.float32)
    if ties:
        x = np.round(x).astype(np.float32)  # a handful of values: many equal maxima
    want = run(monkeypatch, False, fields, method, x, 7)
    got = run(monkeypatch, True, fields, method, x, 7)
    np.testing.assert_array_equal(got[0], want[0])
    if method == "MAX":
        np.testing.assert_array_equal(got[1], want[1])
    # Overlapping windows may add their shares to a cell in another order: last-bit rounding.
    np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-6)


def test_lenet_pooling_is_bit_identical(monkeypatch):
    """Disjoint 2x2/2 windows (LeNet's pools): every value, mask and gradient bit for bit."""
    x = np.random.default_rng(0).standard_normal((4, 5, 24, 24)).astype(np.float32)
    want = run(monkeypatch, False, "kernel_size: 2 stride: 2", "MAX", x, 3)
    got = run(monkeypatch, True, "kernel_size: 2 stride: 2", "MAX", x, 3)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("fields", [c[0] for c in CASES] + [e[0] for e in EXTRA])
def test_test_phase_max_takes_values_only_and_a_later_backward_still_routes(monkeypatch, ties,
                                                                           fields):
    """A TEST forward without a mask top runs the values-only kernel: the TRAIN forward's
    values (NaN never winning, infinities), and a backward after it (pycaffe) finds the
    argmax first, so its gradient is the TRAIN layer's. Equal values compare equal: with
    ties, a zero maximum may be -0.0 where the row-major rule keeps 0.0."""
    shape = {c[0]: c[1] for c in CASES} | dict(EXTRA)
    x = np.random.default_rng(len(fields)).standard_normal(shape[fields]).astype(np.float32)
    if ties:
        x = np.round(x).astype(np.float32)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    train = run(monkeypatch, True, fields, "MAX", x, 5)
    layer = make_layer(f'type: "Pooling" pooling_param {{ pool: MAX {fields} }}',
                       caffe_pb2.TEST)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert layer._argmax_due
    np.testing.assert_array_equal(top[0].data, train[0])
    top[0].diff[...] = np.random.default_rng(5).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    assert not layer._argmax_due
    np.testing.assert_allclose(bottom[0].diff, train[2], rtol=1e-6, atol=1e-6)
