"""Caffe's DataTransformer on a whole batch at once: ``(x - mean) * scale``, crop and mirror.

Facts kept from Caffe (``data_transformer.cpp``): the mean (``mean_file``, a (1, C, H, W)
BlobProto, or ``mean_value``, one per channel or one for all) is taken at each pixel's
position in the *uncropped* image; the crop offset is random in TRAIN and centred (rounded
down) in TEST; ``mirror`` flips a random half of the images horizontally, in either phase;
the arithmetic is float32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import kernels
from ..errors import DataError, WeightsError
from ..proto import caffe_pb2
from ..proto.blobproto import blobproto_shape, blobproto_to_array


def load_mean_file(path: str, where: str = "") -> np.ndarray:
    """The (C, H, W) float32 mean image stored in a BlobProto ``.binaryproto`` file."""
    at = (f"{where}: " if where else "") + f"mean_file '{path}'"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{at} cannot be read ({e.strerror}); relative paths are resolved "
                        f"from the working directory {os.getcwd()}") from None
    try:
        blob = caffe_pb2.BlobProto.FromString(raw)
    except Exception as e:  # protobuf's DecodeError
        raise DataError(f"{at} is not a BlobProto binaryproto ({e})") from None
    dims = blobproto_shape(blob)
    if len(dims) == 4 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) != 3:
        raise DataError(f"{at} has shape {dims}; a mean image must be (1, C, H, W)")
    try:
        return blobproto_to_array(blob).reshape(dims)
    except WeightsError as e:
        raise DataError(f"{at}: {e}") from None


@dataclass
class Crops:
    """Where each image of a batch is cropped and whether it is mirrored: top-left ``rows``
    and ``cols`` (N,), ``flip`` (N,) bool, crop ``size`` (H', W')."""

    rows: np.ndarray
    cols: np.ndarray
    flip: np.ndarray
    size: tuple[int, int]

    def part(self, start: int, stop: int) -> Crops:
        """The crops of images ``start`` to ``stop`` - 1."""
        return Crops(self.rows[start:stop], self.cols[start:stop], self.flip[start:stop],
                     self.size)

    @property
    def uniform(self) -> bool:
        """Whether every image has the same window and none is mirrored."""
        return not self.flip.any() and bool((self.rows == self.rows[0]).all()
                                            and (self.cols == self.cols[0]).all())


class DataTransformer:
    """Turns decoded batches ``(N, C, H, W)`` (uint8 or float32) into float32 network input.

    ``where`` (the layer or database) prefixes error messages. Random choices come from the
    Generator passed to each call, so the caller decides how randomness is seeded.
    """

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int, where: str = ""):
        self._at = f"{where}: " if where else ""  # none when the caller locates its errors
        self.scale = np.float32(param.scale)
        self.crop_size = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.phase = phase
        self.mean_values = [float(v) for v in param.mean_value]
        self.mean_image: np.ndarray | None = None
        if param.mean_file and self.mean_values:
            raise DataError(f"{self._at}transform_param sets both mean_file and mean_value; "
                            "keep one of them", field="transform_param")
        if param.mean_file:
            self.mean_image = load_mean_file(param.mean_file, where)
        self._mean_by_channels: dict[int, np.ndarray] = {}

    @property
    def random(self) -> bool:
        """Whether transforming draws random numbers (random crop or mirror)."""
        return self.mirror or (self.crop_size > 0 and self.phase == caffe_pb2.TRAIN)

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The (C, H', W') of transformed images of ``shape`` (C, H, W); checks the mean."""
        c, h, w = shape
        if self.crop_size and (self.crop_size > h or self.crop_size > w):
            raise DataError(f"{self._at}crop_size {self.crop_size} is larger than the "
                            f"images ({h}×{w}); lower crop_size")
        if self.mean_image is not None and self.mean_image.shape != (c, h, w):
            raise DataError(f"{self._at}the mean_file image has shape "
                            f"{self.mean_image.shape} but the data is {(c, h, w)}")
        if self.mean_values and len(self.mean_values) not in (1, c):
            raise DataError(f"{self._at}give either 1 mean_value or as many as channels "
                            f"({c}); got {len(self.mean_values)}")
        if self.crop_size:
            return (c, self.crop_size, self.crop_size)
        return (c, h, w)

    def _mean(self, channels: int) -> np.ndarray | None:
        """The mean to subtract: (C, H, W) image, (C, 1, 1) per-channel values, or None."""
        if self.mean_image is not None:
            return self.mean_image
        if not self.mean_values:
            return None
        mean = self._mean_by_channels.get(channels)
        if mean is None:
            values = self.mean_values * channels if len(self.mean_values) == 1 \
                else self.mean_values
            mean = np.asarray(values, dtype=np.float32).reshape(channels, 1, 1)
            self._mean_by_channels[channels] = mean
        return mean

    def draw(self, n: int, height: int, width: int,
             rng: np.random.Generator | None = None) -> Crops:
        """The crop offsets and mirror flags of ``n`` images of ``height``×``width``: drawn
        from ``rng`` for the whole batch first (flips, then row and column offsets, Caffe's
        per-batch order), so parts of the batch can then be transformed in any order."""
        if self.random and rng is None:
            raise ValueError("this transform is random and needs a Generator")
        flip = rng.integers(0, 2, size=n).astype(bool) if self.mirror else np.zeros(n, bool)
        crop_h, crop_w = self.crop_size or height, self.crop_size or width
        if self.crop_size and self.phase == caffe_pb2.TRAIN:
            rows = rng.integers(0, height - crop_h + 1, size=n)
            cols = rng.integers(0, width - crop_w + 1, size=n)
        else:
            rows = np.full(n, (height - crop_h) // 2)
            cols = np.full(n, (width - crop_w) // 2)
        return Crops(rows, cols, flip, (crop_h, crop_w))

    def transform(self, images: Sequence[np.ndarray], out: np.ndarray, crops: Crops) -> None:
        """Write ``images`` (each (C, H, W), uint8 or float32, views allowed; or one
        (N, C, H, W) array) transformed into ``out`` (N, C, H', W') float32; ``crops`` is
        their part of a ``draw``. Images sharing one window (no mirror, no random crop) are
        transformed in one operation, others one by one."""
        if crops.uniform:
            data = images if isinstance(images, np.ndarray) else np.stack(images)
            self._window(data, out, int(crops.rows[0]), int(crops.cols[0]), crops.size, False)
            return
        for i, image in enumerate(images):
            self.transform_image(image, out[i], crops, i)

    def transform_image(self, image: np.ndarray, out: np.ndarray, crops: Crops,
                        i: int) -> None:
        """Write image ``i`` of a batch (``image`` (C, H, W), a view allowed) transformed
        into ``out`` (C, H', W'); ``crops`` is the batch's ``draw``."""
        self._window(image, out, int(crops.rows[i]), int(crops.cols[i]), crops.size,
                     bool(crops.flip[i]))

    def _window(self, src: np.ndarray, out: np.ndarray, row: int, col: int,
                size: tuple[int, int], flip: bool) -> None:
        """``src`` (C, H, W) or (N, C, H, W) cropped at (``row``, ``col``), mirrored if
        ``flip``, minus the mean, scaled, into ``out``: one strided copy casts, crops and
        mirrors; the mean is taken at the same (uncropped) positions, as Caffe does."""
        mean = self._mean(src.shape[-3])
        if src.ndim == 3 and self._compiled(src, out, mean, row, col, flip):
            return
        out_h, out_w = size
        cols = slice(col + out_w - 1, col - 1 if col else None, -1) if flip \
            else slice(col, col + out_w)
        window = (..., slice(row, row + out_h), cols)
        if mean is None:
            out[...] = src[window]
        elif mean.shape[1:] == (1, 1):
            np.subtract(src[window], mean, out=out)
        else:
            np.subtract(src[window], mean[window], out=out)
        if self.scale != 1:
            out *= self.scale

    def _compiled(self, src: np.ndarray, out: np.ndarray, mean: np.ndarray | None, row: int,
                  col: int, flip: bool) -> bool:
        """``_window`` of one image by the compiled kernel (``brewnet.kernels.crop``), which
        is bit-identical and about half the time; False, with nothing written, where it does
        not apply: kernels off, or ``src`` not the (C, H, W) view of C-ordered (H, W, C)
        pixels, in either channel order (what decoding an image file gives, and any
        one-channel image), or a dtype other than uint8 and float32."""
        pixels = src.transpose(1, 2, 0)
        reverse = not pixels.flags.c_contiguous
        if reverse:
            pixels = pixels[:, :, ::-1]
        if not (kernels.enabled(np) and pixels.flags.c_contiguous
                and out.flags.c_contiguous and out.dtype == np.float32
                and src.dtype in (np.uint8, np.float32)):
            return False
        from ..kernels.crop import CHANNEL_MEAN, IMAGE_MEAN, NO_MEAN, window_kernel

        channels, height, width = src.shape
        if mean is None:
            kind, mean = NO_MEAN, np.zeros((channels, 1, 1), np.float32)
        else:
            kind = CHANNEL_MEAN if mean.shape[1:] == (1, 1) else IMAGE_MEAN
        compiled = window_kernel(channels, kind, flip, bool(self.scale != 1), reverse)
        compiled(pixels.reshape(height, width * channels), out, mean, row, col, self.scale)
        return True

    def __call__(self, data: np.ndarray, out: np.ndarray,
                 rng: np.random.Generator | None = None) -> None:
        """Write the transformed ``data`` (N, C, H, W) into ``out`` (N, C, H', W') float32."""
        n, _, h, w = data.shape
        self.transform(data, out, self.draw(n, h, w, rng))
