"""pycaffe's ``caffe.io``: arrays to and from Caffe's protobuf records (BlobProto, Datum), and
the image side of deployment — load, resize, crop and the ``Transformer`` that turns an
H×W×K image into the net's (K, H, W) input.

Everything returns float32 (pycaffe returns float64 in places; nets compute in float32).
Resizing is bilinear (or nearest) with pixel-centre alignment and clamped edges, like
OpenCV's INTER_LINEAR that Caffe's own C++ uses, and without skimage's anti-aliasing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from .data.datum import array_to_datum, datum_to_array
from .data.image import import_pillow
from .errors import BrewnetError, DataError, WeightsError, pycaffe_kind
from .net import weights as _weights
from .proto import caffe_pb2

__all__ = ["Transformer", "array_to_blobproto", "array_to_datum",
           "arraylist_to_blobprotovector_str", "blobproto_to_array",
           "blobprotovector_str_to_arraylist", "datum_to_array", "load_image", "oversample",
           "resize_image", "resize_images"]

# skimage's rgb2gray weights (ITU-R BT.709), which pycaffe's load_image(color=False) uses.
_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
_GRAY_MODES = ("1", "L", "LA", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


# ----------------------------------------------------------------------------------------
# protobuf records
# ----------------------------------------------------------------------------------------
def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The values (or, with ``return_diff``, the gradients) of a BlobProto, shaped by its
    legacy num/channels/height/width when any is set, else by ``shape``."""
    return _weights.blobproto_to_array(blob, diff=return_diff)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """A BlobProto holding ``arr`` (and ``diff``) with ``shape`` set from the array."""
    arr = np.asarray(arr)
    if diff is not None and np.shape(diff) != arr.shape:
        raise BrewnetError(f"array_to_blobproto: diff has shape {np.shape(diff)} but the data "
                           f"{arr.shape}; they must match")
    return _weights.array_to_blobproto(arr, None if diff is None else np.asarray(diff))


def arraylist_to_blobprotovector_str(arraylist: Iterable[np.ndarray]) -> bytes:
    """Serialized BlobProtoVector of the arrays (the layout of a mean or a .binaryproto list)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized: bytes) -> list[np.ndarray]:
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    try:
        vec.ParseFromString(serialized)
    except DecodeError as e:
        raise WeightsError(f"not a serialized BlobProtoVector ({e})") from None
    return [blobproto_to_array(b) for b in vec.blobs]


# ----------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------
def load_image(filename: str | os.PathLike, color: bool = True) -> np.ndarray:
    """An image file as float32 H×W×K in [0, 1]: K=3 in RGB order when ``color`` (grayscale
    files are repeated on 3 channels), else K=1 (colour turned to luminance as skimage's
    rgb2gray). An alpha channel is dropped."""
    path = os.fspath(filename)
    image_mod = import_pillow(f"load_image('{path}')")
    try:
        img = image_mod.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"load_image: image '{path}' does not exist") from None
    except image_mod.UnidentifiedImageError:
        raise DataError(f"load_image: '{path}' is not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"load_image: image '{path}' cannot be decoded ({e})") from None
    # PNG has no 32-bit gray: older Pillow opens 16-bit PNGs as mode "I".
    if img.mode in _SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG"):
        pixels = np.asarray(img, dtype=np.float32) / np.float32(65535)
    elif img.mode == "I":
        pixels = np.asarray(img, dtype=np.float32) / np.float32(2 ** 31 - 1)
    elif img.mode == "F":
        pixels = np.asarray(img, dtype=np.float32)
    elif img.mode in _GRAY_MODES:
        pixels = np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255)
    else:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2) if color else pixels[:, :, None]
    return pixels if color else (pixels @ _GRAY_WEIGHTS)[:, :, None]


def _resample(x: np.ndarray, axis: int, size: int, order: int) -> np.ndarray:
    """``x`` resampled to ``size`` along ``axis`` (pixel centres aligned, edges clamped)."""
    old = x.shape[axis]
    if size == old:
        return x
    if old == 0:
        raise BrewnetError(f"cannot resize an image with an empty axis (shape {x.shape})")
    centres = (np.arange(size, dtype=np.float64) + 0.5) * (old / size)
    if order == 0:
        return np.take(x, np.minimum(centres.astype(np.intp), old - 1), axis=axis)
    pos = np.clip(centres - 0.5, 0, old - 1)
    lo = pos.astype(np.intp)
    hi = np.minimum(lo + 1, old - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    w = (pos - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def _resize(x: np.ndarray, dims: Sequence[int], order: int, first_axis: int) -> np.ndarray:
    if order not in (0, 1):
        raise BrewnetError(f"interp_order {order} is not supported; use 1 (bilinear) or 0 "
                           "(nearest)")
    h, w = (int(d) for d in dims)
    x = np.asarray(x, dtype=np.float32)
    return _resample(_resample(x, first_axis, h, order), first_axis + 1, w, order)


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """An H×W(×K) image resized to ``new_dims`` = (height, width), as float32; ``interp_order``
    1 is bilinear, 0 nearest."""
    return _resize(im, new_dims, interp_order, 0)


def resize_images(images: Sequence[np.ndarray] | np.ndarray, new_dims: Sequence[int],
                  interp_order: int = 1) -> np.ndarray:
    """N images (H×W×K, sizes may differ) resized to one (N, h, w, K) float32 array; images
    of one size are resized together in one pass."""
    if isinstance(images, np.ndarray) or len({np.shape(im) for im in images}) == 1:
        return _resize(np.asarray(images), new_dims, interp_order, 1)
    return np.stack([resize_image(im, new_dims, interp_order) for im in images])


def _as_batch(images: Sequence[np.ndarray] | np.ndarray, what: str) -> np.ndarray:
    try:
        batch = np.asarray(images, dtype=np.float32)
    except ValueError:
        raise BrewnetError(f"{what}: the images have different shapes; resize them to one "
                           "size first (resize_image)") from None
    if batch.ndim != 4:
        raise BrewnetError(f"{what}: expected images of shape H×W×K (N, H, W, K together), "
                           f"got {batch.shape}")
    return batch


def oversample(images: Sequence[np.ndarray] | np.ndarray, crop_dims: Sequence[int]
               ) -> np.ndarray:
    """Ten crops of ``crop_dims`` per H×W×K image, pycaffe's layout: for each image the
    top-left, top-right, bottom-left, bottom-right and centre crops, then the same five
    mirrored left-right. Returns (10·N, crop_h, crop_w, K) float32."""
    batch = _as_batch(images, "oversample")
    n, h, w, k = batch.shape
    ch, cw = (int(d) for d in crop_dims)
    if not (0 < ch <= h and 0 < cw <= w):
        raise BrewnetError(f"oversample: crop {ch}×{cw} does not fit the images' {h}×{w}")
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    crops = np.stack([batch[:, y:y + ch, x:x + cw] for y, x in corners], axis=1)
    crops = np.concatenate([crops, crops[:, :, :, ::-1]], axis=1)
    return crops.reshape(n * 10, ch, cw, k)


# ----------------------------------------------------------------------------------------
# Transformer
# ----------------------------------------------------------------------------------------
class Transformer:
    """Turns H×W×K images into a net's inputs and back, per input blob:
    ``Transformer({'data': net.blobs['data'].data.shape})``.

    ``preprocess`` applies, in pycaffe's order: float32 → resize to the input's H×W →
    transpose → channel swap → ×raw_scale → −mean → ×input_scale; ``deprocess`` undoes it.
    Unlike pycaffe it never writes into the caller's array.
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict[str, tuple[int, ...]] = {}
        self.channel_swap: dict[str, tuple[int, ...]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> tuple[int, ...]:
        if in_ not in self.inputs:
            raise BrewnetError(f"'{in_}' is not one of the Transformer's inputs "
                               f"{sorted(self.inputs)}", blob=in_)
        return self.inputs[in_]

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order that turns an image (H, W, K) into the blob's (K, H, W): (2, 0, 1)."""
        shape = self._check_input(in_)
        if sorted(order) != list(range(len(shape) - 1)):
            raise BrewnetError(f"transpose order {tuple(order)} must be a permutation of "
                               f"{len(shape) - 1} axes (the input is {shape})", blob=in_)
        self.transpose[in_] = tuple(int(o) for o in order)

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order applied after the transpose: (2, 1, 0) turns RGB into BGR."""
        shape = self._check_input(in_)
        if len(order) != shape[1]:
            raise BrewnetError(f"channel swap {tuple(order)} needs one entry per channel of "
                               f"the input ({shape[1]})", blob=in_)
        self.channel_swap[in_] = tuple(int(o) for o in order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Factor applied before the mean: 255 for [0, 1] images into a net trained on
        [0, 255]."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Mean to subtract: one value per channel (K,), or elementwise (K, H, W) / (H, W),
        resized to the input when its size differs."""
        shape = self._check_input(in_)
        mean = np.asarray(mean, dtype=np.float32)
        bad_mean = pycaffe_kind(BrewnetError, ValueError)  # pycaffe's set_mean: ValueError
        if mean.ndim == 1:
            if mean.shape[0] != shape[1]:
                raise bad_mean(f"mean has {mean.shape[0]} channels but the input has "
                               f"{shape[1]}", blob=in_)
            mean = mean[:, None, None]
        else:
            if mean.ndim == 2:
                mean = mean[None]
            if mean.ndim != 3 or mean.shape[0] != shape[1]:
                raise bad_mean(f"mean of shape {mean.shape} does not fit the input "
                               f"{shape}: give (channels,) or (channels, H, W)", blob=in_)
            if mean.shape[1:] != shape[2:]:
                mean = _resize(mean, shape[2:], 1, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Factor applied after the mean (e.g. 0.017 for a net trained on scaled inputs)."""
        self._check_input(in_)
        self.input_scale[in_] = scale

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """One H×W×K image → the input's (K, H, W) float32 array."""
        return self.preprocess_batch(in_, np.asarray(data)[None])[0]

    def preprocess_batch(self, in_: str, images: np.ndarray) -> np.ndarray:
        """N images (N, H, W, K) → (N, K, H, W) float32 in one pass (``preprocess`` of each)."""
        shape = self._check_input(in_)
        x = np.asarray(images, dtype=np.float32)
        if x.shape[1:3] != shape[2:]:
            x = _resize(x, shape[2:], 1, 1)
        if in_ in self.transpose:
            x = x.transpose((0, *(o + 1 for o in self.transpose[in_])))
        if in_ in self.channel_swap:
            x = x[:, list(self.channel_swap[in_])]
        if self.raw_scale.get(in_) is not None:
            x = x * np.float32(self.raw_scale[in_])
        if in_ in self.mean:
            x = x - self.mean[in_]
        if self.input_scale.get(in_) is not None:
            x = x * np.float32(self.input_scale[in_])
        return np.ascontiguousarray(x, dtype=np.float32)

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """The input's (K, H, W) array (or a batch of one) → the H×W×K image (at the input's
        size: a resize is not undone)."""
        shape = self._check_input(in_)
        x = np.array(data, dtype=np.float32)
        if x.ndim == len(shape) and x.shape[0] == 1:
            x = x[0]
        if self.input_scale.get(in_) is not None:
            x = x / np.float32(self.input_scale[in_])
        if in_ in self.mean:
            x = x + self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            x = x / np.float32(self.raw_scale[in_])
        if in_ in self.channel_swap:
            x = x[np.argsort(self.channel_swap[in_])]
        if in_ in self.transpose:
            x = x.transpose(np.argsort(self.transpose[in_]))
        return x

