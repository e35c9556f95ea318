"""Caffe's ``Datum`` record: one image (C, H, W) with its label, as stored in an LMDB.

Pixels are either raw uint8 bytes (``data``), floats (``float_data``), or an encoded image
file (``encoded: true``, JPEG/PNG bytes in ``data``, as ``convert_imageset -encoded`` writes).
Encoded records are decoded (with Pillow), so everything downstream sees (C, H, W) pixels.
``record_image`` gives one record's pixels without copying them where it can (the feed's
workers call it in parallel and copy only the crop they keep); ``decode_batch`` stacks a batch
of records into one ``(N, C, H, W)`` array.
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import DataError, pycaffe_kind
from ..proto import caffe_pb2
from .image import decode_image, image_is_color, image_planes


def key_text(key: bytes) -> str:
    """A database key as printable text for error messages."""
    return key.decode("ascii", errors="backslashreplace")


def parse_datum(raw: bytes, where: str, key: bytes) -> caffe_pb2.Datum:
    """Parse and validate one record; ``where`` names the database in error messages."""
    datum = _parse(raw, where, key)
    if datum.encoded:
        datum = decode_encoded(datum, f"{where}: record '{key_text(key)}'")
    check_datum(datum, where, key)
    return datum


def _parse(raw: bytes, where: str, key: bytes) -> caffe_pb2.Datum:
    try:
        return caffe_pb2.Datum.FromString(raw)
    except DecodeError as e:
        raise DataError(f"{where}: record '{key_text(key)}' is not a Datum ({e})") from None


def decode_encoded(datum: caffe_pb2.Datum, what: str = "encoded Datum") -> caffe_pb2.Datum:
    """The raw-pixel Datum of an encoded one (same label), decoded in Caffe's BGR order.

    ``channels`` 1 asks for grayscale and 3 for colour; when it is unset (``convert_imageset
    -encoded`` leaves it 0) the file's own kind decides, like Caffe's native decoding.
    ``what`` names the record in error messages.
    """
    pixels = decode_image(datum.data, _encoded_is_color(datum, what), what=what)
    raw = array_to_datum(pixels)
    raw.label = datum.label
    return raw


def _encoded_is_color(datum: caffe_pb2.Datum, what: str) -> bool:
    if datum.channels == 1:
        return False
    if datum.channels == 3:
        return True
    if datum.channels == 0:
        return image_is_color(datum.data, what)
    raise DataError(f"{what} is an encoded image with channels={datum.channels}; "
                    "encoded images decode to 1 (grayscale) or 3 (colour) channels")


def check_datum(datum: caffe_pb2.Datum, where: str, key: bytes) -> None:
    """Refuse records the decoder cannot turn into a (C, H, W) array."""
    c, h, w = datum.channels, datum.height, datum.width
    data = datum.data
    if c > 0 and h > 0 and w > 0 and (len(data) if data else len(datum.float_data)) == c * h * w:
        return  # the usual case, without building an error's text for every record
    at = f"{where}: record '{key_text(key)}'"
    if c <= 0 or h <= 0 or w <= 0:
        raise DataError(f"{at} is not an image Datum (channels={c}, height={h}, width={w}; "
                        "all must be positive)")
    size = c * h * w
    if datum.data:
        if len(datum.data) != size:
            raise DataError(f"{at} has {len(datum.data)} bytes of data but channels×height×width "
                            f"= {c}×{h}×{w} = {size}")
    elif len(datum.float_data) != size:
        raise DataError(f"{at} has {len(datum.float_data)} float_data values but "
                        f"channels×height×width = {c}×{h}×{w} = {size}")


def datum_shape(datum: caffe_pb2.Datum) -> tuple[int, int, int]:
    return (datum.channels, datum.height, datum.width)


def record_image(raw: bytes, where: str, key: bytes) -> tuple[np.ndarray, float]:
    """One record's (C, H, W) pixels and label: uint8 for byte or encoded data (a view, not a
    copy), float32 for float_data. Safe to call from several threads at once."""
    datum = _parse(raw, where, key)
    if datum.encoded:
        what = f"{where}: record '{key_text(key)}'"
        is_color = None if datum.channels == 0 else _encoded_is_color(datum, what)
        pixels = image_planes(datum.data, is_color, what=what)
        return pixels, datum.label
    check_datum(datum, where, key)
    data = datum.data
    if data:
        return np.frombuffer(data, np.uint8).reshape(datum_shape(datum)), datum.label
    return np.asarray(datum.float_data, np.float32).reshape(datum_shape(datum)), datum.label


def shape_mismatch(where: str, key: bytes, shape: tuple[int, ...],
                   first: tuple[int, ...]) -> DataError:
    """The error for a record whose shape differs from its batch's first record."""
    return DataError(f"{where}: record '{key_text(key)}' has shape {shape} but its batch "
                     f"started with shape {first}; all records of a batch must have one shape")


def decode_batch(records: list[tuple[bytes, bytes]], where: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(key, value)`` records into data ``(N, C, H, W)`` and float32 labels ``(N,)``.

    The data array is uint8 when every record holds raw bytes (the usual case), else float32.
    All records of a batch must share the first record's shape, as Caffe's batch reshaping
    requires.
    """
    decoded = [record_image(raw, where, key) for key, raw in records]
    shape = decoded[0][0].shape
    for (key, _), (pixels, _) in zip(records, decoded, strict=True):
        if pixels.shape != shape:
            raise shape_mismatch(where, key, pixels.shape, shape)
    data = np.stack([pixels for pixels, _ in decoded])
    labels = np.fromiter((label for _, label in decoded), dtype=np.float32, count=len(decoded))
    return data, labels


def array_to_datum(array: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum from a (C, H, W) array: uint8 arrays as bytes, anything else as float_data."""
    if array.ndim != 3:
        raise pycaffe_kind(DataError, ValueError)(
            f"a Datum holds a (C, H, W) array; got shape {array.shape}")
    datum = caffe_pb2.Datum(channels=array.shape[0], height=array.shape[1],
                            width=array.shape[2])
    if array.dtype == np.uint8:
        datum.data = np.ascontiguousarray(array).tobytes()
    else:
        datum.float_data.extend(np.asarray(array, dtype=np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """The (C, H, W) array of a Datum: uint8 for byte (or encoded) data, float32 for
    float_data."""
    if datum.encoded:
        datum = decode_encoded(datum)
    shape = datum_shape(datum)
    if datum.data:
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)
