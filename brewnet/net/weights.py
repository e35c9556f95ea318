"""Parameter blobs to and from Caffe's ``BlobProto``/``NetParameter`` (the .caffemodel
format), matching layers by name as Caffe's CopyTrainedLayersFrom does."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from ..errors import ShapeError, WeightsError
from ..log import log
from ..proto import caffe_pb2

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
    if values.size != expected:
        raise WeightsError(f"blob declares shape {shape} ({expected} values) but holds "
                           f"{values.size}")
    return values.reshape(shape)


def array_to_blobproto(data: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    bp = caffe_pb2.BlobProto()
    bp.shape.dim.extend(int(d) for d in data.shape)
    bp.data.extend(np.ascontiguousarray(data, dtype=np.float32).ravel().tolist())
    if diff is not None:
        bp.diff.extend(np.ascontiguousarray(diff, dtype=np.float32).ravel().tolist())
    return bp


def blob_to_proto(blob: Blob, write_diff: bool = False) -> caffe_pb2.BlobProto:
    from ..backend import to_numpy  # noqa: PLC0415

    return array_to_blobproto(to_numpy(blob.data), to_numpy(blob.diff) if write_diff else None)


def copy_layer_blobs(layer, blob_protos, source: str) -> None:
    """Copy ``blob_protos`` into ``layer.blobs`` in place (values, and gradients when the file
    has them, as Caffe's FromProto), checking the count and every shape first."""
    target = layer.blobs
    if len(blob_protos) != len(target):
        raise WeightsError(f"{source}: layer '{layer.name}' has {len(blob_protos)} parameter "
                           f"blobs there but this net's layer ({layer.type}) has {len(target)}; "
                           "rename the layer to learn it from scratch")
    for j, (bp, blob) in enumerate(zip(blob_protos, target, strict=True)):
        dst_shape = tuple(blob.data.shape)
        if not shape_matches(bp, dst_shape):
            raise ShapeError(f"weights from {source} have shape {blobproto_shape(bp)} for "
                             f"parameter {j} but this net needs {dst_shape}; to learn this "
                             "layer from scratch instead, rename it", layer=layer.name,
                             layer_type=layer.type)
        try:
            blob.data[...] = blob.xp.asarray(blobproto_to_array(bp).reshape(dst_shape))
            if len(bp.diff) or len(bp.double_diff):
                blob.diff[...] = blob.xp.asarray(blobproto_to_array(bp, diff=True)
                                                 .reshape(dst_shape))
        except WeightsError as e:
            raise WeightsError(f"{source}: layer '{layer.name}' parameter {j}: {e}") from None


def copy_trained_layers(net, param: caffe_pb2.NetParameter, source: str = "") -> list[str]:
    """Copy every layer of ``param`` that has a namesake in ``net``; return the names of
    source layers that matched nothing (Caffe logs them as ignored)."""
    by_name = dict(zip(net._layer_names, net.layers, strict=True))
    ignored = []
    for src in param.layer:
        layer = by_name.get(src.name)
        if layer is None:
            ignored.append(src.name)
            log.info(f"Ignoring source layer {src.name}")
            continue
        copy_layer_blobs(layer, src.blobs, source or "weights")
    return ignored
