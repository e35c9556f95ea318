"""The data transform of one decoded image in one pass: crop, mirror, minus the mean, times
the scale, cast to float32, written into its place in the batch.

Decoded images arrive as the decoder's (H, W, C) pixels seen through a (C, H, W) view: a
channel-reversing one for Pillow's RGB (to Caffe's BGR), a plain transpose for OpenCV's BGR.
NumPy's casting copy of a crop of that view, its buffered subtraction of the mean and its
second pass for the scale cost 110 us an image (256x256 to 227x227) when written into a
batch; this kernel reads each row's pixels once, in order, and writes each output value once,
into one row per channel: 28 us (sweeping a row once per channel at a stride of 3 bytes took
60). Its indices are unsigned, so numba adds no negative-index wrap-around to them.

The arithmetic is ``brewnet.data.transform.DataTransformer._window``'s, in its order and in
float32 (``fastmath`` off): ``(float32(x) - mean) * scale``, the subtraction skipped without a
mean and the product when the scale is 1, so the values are bit-identical to the NumPy body.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import kernel

NO_MEAN, CHANNEL_MEAN, IMAGE_MEAN = 0, 1, 2  # what ``mean`` holds: nothing, (C, 1, 1), (C, H, W)


@cache
def window_kernel(channels: int, mean_kind: int, flip: bool, scaled: bool,
                  reverse: bool = True):
    """``window(pixels, out, mean, row, col, scale)``: ``pixels`` (H, W * channels), C-ordered
    rows of interleaved channels, in reverse order if ``reverse`` (Pillow's RGB for Caffe's
    BGR), uint8 or float32, cropped at (``row``, ``col``) into ``out`` (channels, H', W') float32,
    C-contiguous; mirrored if ``flip``; the mean (``mean_kind``) is read at the uncropped
    positions, as Caffe does; times ``scale`` if ``scaled``. Compiled once per combination,
    so the choices are constants in the loops."""
    stride = np.uint64(channels)

    def window(pixels, out, mean, row, col, scale):  # pragma: no cover - compiled
        _, out_h, out_w = out.shape
        first = np.uint64(col + out_w - 1 if flip else col)  # the column of out's first value
        for i in range(out_h):
            source = pixels[row + i]
            mean_row = row + i if mean_kind == IMAGE_MEAN else 0
            for j in range(np.uint64(out_w)):
                x = first - j if flip else first + j  # the source column of out[:, i, j]
                for c in range(channels):
                    v = np.float32(source[x * stride + np.uint64(
                        channels - 1 - c if reverse else c)])
                    if mean_kind == CHANNEL_MEAN:
                        v = v - mean[c, 0, 0]
                    elif mean_kind == IMAGE_MEAN:
                        v = v - mean[c, mean_row, x]
                    if scaled:
                        v = v * scale
                    out[c, i, j] = v

    return kernel(window)
