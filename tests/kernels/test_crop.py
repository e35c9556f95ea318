"""The compiled crop-mirror-mean-scale of one image is bit-identical to the NumPy body of
DataTransformer._window, which tests/data/test_transform.py checks against Caffe's rules."""

import numpy as np
import pytest

from brewnet.data import transform as transform_module
from brewnet.data.transform import DataTransformer
from brewnet.proto import caffe_pb2

pytest.importorskip("numba")


def _transformer(mean: str, scale: float, channels: int, size: int) -> DataTransformer:
    param = caffe_pb2.TransformationParameter(crop_size=size - 3, mirror=True, scale=scale)
    if mean == "values":
        param.mean_value.extend([100.5, 110.25, 120.75][:channels])
    transformer = DataTransformer(param, caffe_pb2.TRAIN)
    if mean == "image":
        rng = np.random.default_rng(1)
        transformer.mean_image = rng.uniform(0, 255, (channels, size, size)).astype(np.float32)
    return transformer


def _planes(rng: np.random.Generator, channels: int, size: int, dtype: type,
            reverse: bool = True) -> np.ndarray:
    """A (C, H, W) view of (H, W, C) pixels, in reverse channel order (Pillow's RGB) or in
    their own (OpenCV's BGR), as decoding gives."""
    if dtype is np.uint8:
        pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    else:
        pixels = rng.uniform(-300, 300, (size, size, channels)).astype(np.float32)
    return (pixels[:, :, ::-1] if reverse else pixels).transpose(2, 0, 1)


@pytest.mark.parametrize("reverse", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mean", ["none", "values", "image"])
@pytest.mark.parametrize("scale", [1.0, 0.017])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_kernel_matches_numpy_bit_for_bit(monkeypatch, channels, mean, scale, dtype, reverse):
    """Every crop offset corner and both mirror states, for each mean kind, scale, dtype,
    channel count and channel order: the kernel writes the NumPy body's float32 values
    exactly."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", True)  # even under BREWNET_KERNELS=numpy
    size = 13
    transformer = _transformer(mean, scale, channels, size)
    src = _planes(np.random.default_rng(2), channels, size, dtype, reverse)
    cases = [(row, col, flip) for row in (0, 3) for col in (0, 2, 3) for flip in (False, True)]
    got = np.full((len(cases), channels, size - 3, size - 3), np.nan, np.float32)
    want = np.full_like(got, np.nan)
    for k, (row, col, flip) in enumerate(cases):
        transformer._window(src, got[k], row, col, (size - 3, size - 3), flip)
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", False)
    for k, (row, col, flip) in enumerate(cases):
        transformer._window(src, want[k], row, col, (size - 3, size - 3), flip)
    assert got.tobytes() == want.tobytes()


def test_kernel_is_taken_only_for_decoded_layouts(monkeypatch):
    """Decoded (H, W, C) pixels, in either channel order, go through the kernel; a
    (C, H, W)-ordered colour array (a raw Datum) keeps the NumPy body, with the same values
    either way."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", True)
    calls = []
    real = transform_module.DataTransformer._compiled

    def spy(self, *args):
        taken = real(self, *args)
        calls.append(taken)
        return taken

    monkeypatch.setattr(transform_module.DataTransformer, "_compiled", spy)
    transformer = _transformer("values", 1.0, 3, 13)
    decoded = _planes(np.random.default_rng(3), 3, 13, np.uint8)
    bgr = np.ascontiguousarray(decoded.transpose(1, 2, 0)).transpose(2, 0, 1)
    raw = np.ascontiguousarray(decoded)
    outs = np.empty((3, 3, 10, 10), np.float32)
    transformer._window(decoded, outs[0], 1, 2, (10, 10), True)
    transformer._window(bgr, outs[1], 1, 2, (10, 10), True)
    transformer._window(raw, outs[2], 1, 2, (10, 10), True)
    assert calls == [True, True, False]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()
