"""Parameter blobs to and from Caffe's ``BlobProto``/``NetParameter`` (the .caffemodel
format), matching layers by name as Caffe's CopyTrainedLayersFrom does."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from ..errors import ShapeError, WeightsError
from ..log import log
from ..proto import caffe_pb2


def blobproto_shape(bp: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape a BlobProto declares: ``shape.dim``, or the legacy num/channels/height/width."""
    if bp.HasField("shape"):
        return tuple(int(d) for d in bp.shape.dim)
    if any(bp.HasField(f) for f in ("num", "channels", "height", "width")):
        return (bp.num, bp.channels, bp.height, bp.width)
    return (len(bp.data) or len(bp.double_data),)


def _legacy_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Caffe's LegacyShape view: pad to 4 axes with leading 1s (the comparison Caffe uses
    for weights saved with num/channels/height/width)."""
    return (1,) * (4 - len(shape)) + shape if len(shape) <= 4 else shape


def blobproto_to_array(bp: caffe_pb2.BlobProto, diff: bool = False) -> np.ndarray:
    """The values (or gradients) of ``bp`` as a float32 array of its declared shape."""
    shape = blobproto_shape(bp)
    single, double = (bp.diff, bp.double_diff) if diff else (bp.data, bp.double_data)
    values = np.asarray(single if len(single) else double, dtype=np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise WeightsError(f"blob declares shape {shape} ({int(np.prod(shape))} values) but "
                           f"holds {values.size}")
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


def copy_layer_blobs(layer, blob_protos, source: str, layer_index_hint: str = "") -> None:
    """Copy ``blob_protos`` into ``layer.blobs`` in place, checking count and shapes."""
    target = layer.blobs
    if len(blob_protos) != len(target):
        raise WeightsError(f"{source}: layer '{layer.name}' has {len(blob_protos)} parameter "
                           f"blobs there but this net's layer ({layer.type}) has {len(target)}; "
                           "rename the layer to learn it from scratch")
    for j, (bp, blob) in enumerate(zip(blob_protos, target, strict=True)):
        src_shape = blobproto_shape(bp)
        dst_shape = tuple(blob.data.shape)
        legacy = not bp.HasField("shape")
        same = (_legacy_shape(src_shape) == _legacy_shape(dst_shape)) if legacy else (
            src_shape == dst_shape)
        if not same:
            raise ShapeError(f"weights from {source} have shape {src_shape} for parameter {j} "
                             f"but this net needs {dst_shape}{layer_index_hint}; to learn this "
                             "layer from scratch instead, rename it", layer=layer.name,
                             layer_type=layer.type)
        values = blobproto_to_array(bp)
        blob.data[...] = blob.xp.asarray(values.reshape(dst_shape))


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
