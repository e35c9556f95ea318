"""Image files to Caffe's pixel layout: uint8 (C, H, W), BGR for colour.

Caffe decodes with OpenCV, whose colour order is BGR; databases and nets trained by Caffe
expect that order, so colour images are returned as B, G, R planes. Pillow is the decoder
(an optional dependency, ``pip install 'brewnet[image]'``, imported on first use). Where
OpenCV is installed too (``brewnet[opencv]``), complete JPEG files decoded in colour go
through ``cv2.imdecode`` instead: Caffe's own decoder, pixel-for-pixel what Pillow gives
(both are libjpeg-turbo with the same IDCT and upsampling), but it writes straight into a
NumPy array without holding the GIL, where Pillow's pixel export holds it; so the Data
layer's decoding workers run side by side. ``BREWNET_IMAGE_DECODER=pillow`` in the
environment keeps every image on Pillow.
"""

from __future__ import annotations

import io
import os
from functools import cache
from typing import Any

import numpy as np

from ..errors import DataError

INSTALL_HINT = "pip install 'brewnet[image]'"
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # Pillow's one-channel modes


def import_pillow(what: str) -> Any:
    """The ``PIL.Image`` module, or a DataError saying that ``what`` needs Pillow."""
    try:
        from PIL import Image  # optional dependency
    except ImportError:
        raise DataError(f"{what} needs Pillow to decode images: {INSTALL_HINT}") from None
    return Image


@cache
def opencv_module() -> Any:
    """The ``cv2`` module when it may decode JPEG files, else None."""
    if os.environ.get("BREWNET_IMAGE_DECODER", "").lower() == "pillow":
        return None
    try:
        import cv2  # optional dependency
    except ImportError:
        return None
    return cv2


_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


def _opencv_jpeg(data: bytes, is_color: bool | None) -> np.ndarray | None:
    """OpenCV's (C, H, W) BGR view of a complete JPEG file decoded in colour (or in its own
    kind, for ``is_color`` None), or None where this path does not apply: no OpenCV, not a
    JPEG, a file without its end marker (Pillow then reports it truncated, where libjpeg
    would warn and return a partial image), grayscale wanted (OpenCV takes the luma libjpeg
    computes, Pillow converts the decoded RGB: they differ by a level), or a kind OpenCV
    keeps in 4 channels. EXIF orientation is ignored, as Pillow ignores it."""
    cv2 = opencv_module()
    if (cv2 is None or is_color is False or not data.startswith(_JPEG_START)
            or _JPEG_END not in data[-64:]):
        return None
    flag = (cv2.IMREAD_COLOR if is_color else cv2.IMREAD_ANYCOLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if pixels is None or pixels.dtype != np.uint8 or pixels.ndim == 3 and pixels.shape[2] != 3:
        return None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def decode_image(data: bytes, is_color: bool, new_height: int = 0, new_width: int = 0,
                 what: str = "image") -> np.ndarray:
    """``image_planes`` as a contiguous array of its own."""
    return np.array(image_planes(data, is_color, new_height, new_width, what), order="C")


def image_planes(data: bytes, is_color: bool | None, new_height: int = 0, new_width: int = 0,
                 what: str = "image") -> np.ndarray:
    """Decode an encoded image file (JPEG, PNG, ...) to uint8 (C, H, W), a view of the
    decoder's (H, W, C) pixels: a crop then copies only the pixels it keeps.

    Colour gives 3 channels in BGR order, grayscale 1 channel, None the file's own kind
    (``image_is_color``, without opening the file twice). When both ``new_height`` and
    ``new_width`` are positive the image is resized to exactly that size with bilinear
    interpolation, as Caffe does (Pillow's bilinear filter widens its support when shrinking,
    so downscaled pixels are smoother than OpenCV's INTER_LINEAR; upscaling agrees).
    ``what`` names the image in error messages.
    """
    if new_height <= 0 or new_width <= 0:
        pixels = _opencv_jpeg(data, is_color)
        if pixels is not None:
            return pixels
    image_mod = import_pillow(what)
    try:
        img = image_mod.open(io.BytesIO(data))
        img.load()
    except image_mod.UnidentifiedImageError:
        raise DataError(f"{what} is not an image file Pillow can read "
                        f"({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{what} cannot be decoded; the file is damaged or truncated "
                        f"({e})") from None
    if is_color is None:
        is_color = img.mode not in _GRAY_MODES
    mode = "RGB" if is_color else "L"
    if img.mode != mode:
        img = img.convert(mode)
    if new_height > 0 and new_width > 0 and img.size != (new_width, new_height):
        img = img.resize((new_width, new_height), image_mod.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[:, :, ::-1].transpose(2, 0, 1) if is_color else pixels[None]


def image_is_color(data: bytes, what: str = "image") -> bool:
    """Whether an encoded image has colour (OpenCV's IMREAD_ANYCOLOR choice): False for
    single-channel (grayscale) files, True otherwise."""
    image_mod = import_pillow(what)
    try:
        img = image_mod.open(io.BytesIO(data))
    except image_mod.UnidentifiedImageError:
        raise DataError(f"{what} is not an image file Pillow can read "
                        f"({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{what} cannot be decoded ({e})") from None
    return img.mode not in _GRAY_MODES


def read_image(path: str, is_color: bool, new_height: int = 0, new_width: int = 0,
               what: str = "") -> np.ndarray:
    """Read and decode the image file at ``path``; ``what`` prefixes error messages."""
    at = (f"{what}: " if what else "") + f"image '{path}'"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{at} cannot be read ({e.strerror or e})") from None
    return decode_image(data, is_color, new_height, new_width, what=at)
