"""A BlobProto's declared shape and its values as a NumPy array, by the rules of Caffe's
``Blob::FromProto``. Below the net package, so that layers reading a ``.binaryproto`` (the
InfogainLoss matrix) read it exactly as the net reads weights.
"""

from __future__ import annotations

import numpy as np

from ..errors import WeightsError, pycaffe_kind
from . import caffe_pb2

_LEGACY = ("num", "channels", "height", "width")


def _is_legacy(bp: caffe_pb2.BlobProto) -> bool:
    return any(bp.HasField(f) for f in _LEGACY)


def blobproto_shape(bp: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape a BlobProto declares: the legacy num/channels/height/width when any is set
    (Caffe's FromProto checks those first), else ``shape.dim`` (no shape at all is 0-d)."""
    if _is_legacy(bp):
        return (bp.num, bp.channels, bp.height, bp.width)
    return tuple(int(d) for d in bp.shape.dim)


def _legacy_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Caffe's LegacyShape(-4..-1): pad to 4 axes with leading 1s; None beyond 4 axes."""
    return (1,) * (4 - len(shape)) + shape if len(shape) <= 4 else None


def shape_matches(bp: caffe_pb2.BlobProto, shape: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals: legacy protos compare against the 4-axis legacy view."""
    if _is_legacy(bp):
        return _legacy_shape(tuple(shape)) == blobproto_shape(bp)
    return tuple(shape) == blobproto_shape(bp)


def blobproto_to_array(bp: caffe_pb2.BlobProto, diff: bool = False) -> np.ndarray:
    """The values (or gradients) of ``bp`` as a float32 array of its declared shape; double
    values win when present, as in Caffe's FromProto."""
    shape = blobproto_shape(bp)
    single, double = (bp.diff, bp.double_diff) if diff else (bp.data, bp.double_data)
    values = np.asarray(double if len(double) else single, dtype=np.float32)
    expected = int(np.prod(shape, dtype=np.int64))
    if values.size != expected:  # pycaffe's reshape raises ValueError here
        error = pycaffe_kind(WeightsError, ValueError)
        if not shape and not bp.HasField("shape"):
            raise error(f"blob holds {values.size} values but declares no shape; set its "
                        "shape.dim (or legacy num/channels/height/width)")
        raise error(f"blob declares shape {shape} ({expected} values) but holds {values.size}")
    return values.reshape(shape)
