"""The compiled col2im (the convolution's patch-row bottom gradient) gives the NumPy body's
bottom diff bit for bit; the body itself is checked against numerical gradients in
tests/layers/test_conv.py."""

import numpy as np
import pytest

from tests.gradcheck import blobs_from, make_layer, setup_layer

pytest.importorskip("numba")

CASES = [
    ("num_output: 6 kernel_size: 5", (2, 8, 9, 9)),  # LeNet's conv2 shape class
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 12, 9, 8)),
    ("num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_h: 2 pad_w: 1",
     (1, 16, 7, 10)),  # stride > kernel
    ("num_output: 4 kernel_size: 3 dilation: 2 pad: 2", (2, 12, 8, 8)),
    ("num_output: 6 kernel_size: 3 group: 2 stride: 2", (2, 32, 9, 9)),
]


def bottom_diff(monkeypatch, compiled: bool, fields: str, shape) -> np.ndarray:
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    layer = make_layer(f'type: "Convolution" convolution_param {{ {fields} '
                       'weight_filler { type: "gaussian" std: 0.5 } }')
    rng = np.random.default_rng(11)
    bottom = blobs_from(rng.standard_normal(shape).astype(np.float32))
    top = setup_layer(layer, bottom)
    assert layer._patch_rows  # the layout whose col2im the kernel replaces
    layer.blobs[0].data[...] = rng.standard_normal(layer.blobs[0].shape)
    layer.forward(bottom, top)
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    for _ in range(2):  # scratch reused across iterations must start from zero again
        layer.backward(top, [True], bottom)
    return bottom[0].diff.copy()


@pytest.mark.parametrize(("fields", "shape"), CASES)
def test_kernel_matches_numpy_body(monkeypatch, fields, shape):
    """Padding, stride (also > kernel), dilation, groups: same sums in the same order."""
    want = bottom_diff(monkeypatch, False, fields, shape)
    got = bottom_diff(monkeypatch, True, fields, shape)
    np.testing.assert_array_equal(got, want)
