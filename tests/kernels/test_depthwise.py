"""The compiled depthwise convolution gives the NumPy body's top and bottom diff bit for bit
and its weight gradient within float32 rounding; the body itself is checked against direct
loops and numerical gradients in tests/layers/test_conv.py."""

import numpy as np
import pytest

from brewnet import cores
from tests.gradcheck import blobs_from, make_layer, setup_layer

pytest.importorskip("numba")

CASES = [
    ("num_output: 8 kernel_size: 3 pad: 1 group: 8", (2, 8, 9, 9)),  # MobileNet's 3x3
    ("num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 6", (2, 6, 9, 8)),
    ("num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_h: 2 pad_w: 1 "
     "group: 4", (1, 4, 7, 10)),  # stride > kernel
    ("num_output: 4 kernel_size: 3 dilation: 2 group: 4", (2, 4, 8, 8)),  # no padding
    ("num_output: 4 kernel_h: 2 kernel_w: 3 pad_h: 1 pad_w: 2 dilation: 2 group: 4",
     (2, 4, 6, 7)),  # stride 1, uneven: the gathered bottom gradient
    ("num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad: 2 dilation: 2 "
     "group: 4", (2, 4, 9, 11)),  # column phases of a stride with a dilation
]


def run(monkeypatch, compiled: bool, fields: str, shape) -> list[np.ndarray]:
    """Top, bottom diff, weight diff and bias diff after a forward and two backwards."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    layer = make_layer(f'type: "Convolution" convolution_param {{ {fields} '
                       'weight_filler { type: "gaussian" std: 0.5 } '
                       'bias_filler { type: "gaussian" std: 0.5 } }')
    rng = np.random.default_rng(11)
    bottom = blobs_from(rng.standard_normal(shape).astype(np.float32))
    top = setup_layer(layer, bottom)
    assert layer._kind == "depthwise"
    for blob in layer.blobs:
        blob.data[...] = rng.standard_normal(blob.shape)
    layer.forward(bottom, top)
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    for _ in range(2):  # scratch reused across iterations must start from zero again
        layer.backward(top, [True], bottom)
    return [top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
            layer.blobs[1].diff.copy()]


@pytest.mark.parametrize(("fields", "shape"), CASES)
def test_kernel_matches_numpy_body(monkeypatch, fields, shape):
    """Padding, stride (also > kernel), dilation: the same products added in the same order
    (forward, bottom gradient: scattered by the body, gathered cell by cell or phase by phase
    by the kernel); the weight gradient's sums within 1e-5 relative."""
    top, dx, dw, db = run(monkeypatch, True, fields, shape)
    top_np, dx_np, dw_np, db_np = run(monkeypatch, False, fields, shape)
    np.testing.assert_array_equal(top, top_np)
    np.testing.assert_array_equal(dx, dx_np)
    np.testing.assert_allclose(dw, dw_np, rtol=1e-5, atol=1e-5 * np.abs(dw_np).max())
    np.testing.assert_array_equal(db, db_np)


@pytest.mark.parametrize(("fields", "shape"), CASES[:2])
def test_channels_split_over_the_cores_change_nothing(monkeypatch, two_blas_threads, fields,
                                                      shape):
    """Each core runs the kernels over its own channels (``brewnet.cores``): the top and
    every gradient bit for bit as one call over all channels."""
    whole = run(monkeypatch, True, fields, shape)
    with cores.sharing(shape[0]):
        assert len(cores.parts(np, shape[1])) == 2
        split = run(monkeypatch, True, fields, shape)
    for got, want in zip(split, whole, strict=True):
        np.testing.assert_array_equal(got, want)
