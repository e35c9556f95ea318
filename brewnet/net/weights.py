"""Parameter blobs to and from Caffe's ``BlobProto``/``NetParameter`` (the .caffemodel
format), matching layers by name as Caffe's CopyTrainedLayersFrom does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..blob import Blob
from ..errors import ShapeError, WeightsError
from ..log import log
from ..proto import caffe_pb2
from ..proto.blobproto import blobproto_shape, blobproto_to_array, shape_matches
from .lint import NetWarning
from .locate import locate_layer_error

if TYPE_CHECKING:
    from .plan import Plan


def array_to_blobproto(data: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    bp = caffe_pb2.BlobProto()
    bp.shape.dim.extend(int(d) for d in data.shape)
    bp.data.extend(np.ascontiguousarray(data, dtype=np.float32).ravel().tolist())
    if diff is not None:
        bp.diff.extend(np.ascontiguousarray(diff, dtype=np.float32).ravel().tolist())
    return bp


def blob_to_proto(blob: Blob, write_diff: bool = False) -> caffe_pb2.BlobProto:
    from ..backend import to_numpy
    return array_to_blobproto(to_numpy(blob.data), to_numpy(blob.diff) if write_diff else None)


def stage_layer_blobs(layer, blob_protos, source: str) -> list[tuple[Blob, np.ndarray,
                                                                       np.ndarray | None]]:
    """Decode ``blob_protos`` for ``layer.blobs`` without touching the layer: (blob, values,
    gradients or None) per parameter, after checking the count and every shape."""
    target = layer.blobs
    if len(blob_protos) != len(target):
        raise WeightsError(f"{source} has {len(blob_protos)} parameter blobs for this layer but "
                           f"{layer.type} here has {len(target)}; rename the layer to learn it "
                           "from scratch", layer=layer.name, layer_type=layer.type)
    staged = []
    for j, (bp, blob) in enumerate(zip(blob_protos, target, strict=True)):
        dst_shape = tuple(blob.data.shape)
        if not shape_matches(bp, dst_shape):
            raise ShapeError(f"weights from {source} have shape {blobproto_shape(bp)} for "
                             f"parameter {j} but this net needs {dst_shape}", layer=layer.name,
                             layer_type=layer.type)
        try:
            values = blobproto_to_array(bp).reshape(dst_shape)
            grads = (blobproto_to_array(bp, diff=True).reshape(dst_shape)
                     if len(bp.diff) or len(bp.double_diff) else None)
        except WeightsError as e:
            raise WeightsError(f"parameter {j}: {e.message}", layer=layer.name,
                               layer_type=layer.type, file=source) from None
        staged.append((blob, values, grads))
    return staged


def assign_staged(staged: list[tuple[Blob, np.ndarray, np.ndarray | None]]) -> None:
    """Copy staged values (and gradients) into their blobs; nothing here can fail on the
    file's contents, so a net is either wholly loaded or untouched."""
    for blob, values, grads in staged:
        blob.data[...] = blob.xp.asarray(values)
        if grads is not None:
            blob.diff[...] = blob.xp.asarray(grads)


def _input_hint(plan: Plan, index: int) -> str:
    """Where a wrong parameter shape usually comes from: the shape of the layer's input and
    the layer that made it."""
    step = plan.steps[index]
    names = step.bottom_names
    if not names:
        return "; to learn this layer from scratch instead, rename it"
    shapes = ", ".join(str(tuple(b.data.shape)) for b in step.bottoms)
    producers = [s.name for s in plan.steps[:index]
                 if set(s.top_names) & set(names) and s.layer.type != "Split"]
    made_by = f" (made by {producers[-1]})" if producers else ""
    return (f" — the input to {step.name} is {shapes}{made_by}; check the settings of "
            f"{step.name} and of the layers before it, or rename the layer to learn it from "
            "scratch")


def copy_trained_layers(plan: Plan, param: caffe_pb2.NetParameter, source: str = ""
                        ) -> list[str]:
    """Copy every layer of ``param`` that has a namesake in ``plan``; return the names of
    source layers that matched nothing (Caffe logs them as ignored). Source layers with
    weights that match nothing, and layers of the net left with their initial values, become
    warnings (logged, and kept in ``plan.warnings``)."""
    source = source or "weights"
    index = {step.name: i for i, step in enumerate(plan.steps)}
    ignored, unused, filled = [], [], set()
    staged: list[tuple[Blob, np.ndarray, np.ndarray | None]] = []
    for src in param.layer:
        i = index.get(src.name)
        if i is None:
            ignored.append(src.name)
            log.info(f"Ignoring source layer {src.name}")
            if len(src.blobs):
                unused.append(src.name)
            continue
        step = plan.steps[i]
        try:
            staged.extend(stage_layer_blobs(step.layer, src.blobs, source))
        except (WeightsError, ShapeError) as e:
            if isinstance(e, ShapeError):
                e.message += _input_hint(plan, i)
            raise locate_layer_error(e, step.layer.param, step.origin, plan.file) from None
        filled.add(i)
    assign_staged(staged)  # only once every layer has been checked: all or nothing
    found = []
    if unused:
        found.append(NetWarning(f"{source} has weights for layers that match no layer of this "
                                f"net: {', '.join(unused)}; rename layers to use them"))
    for i, step in enumerate(plan.steps):
        if step.layer.blobs and i not in filled and step.layer.type != "Split":
            w = NetWarning(f"got no weights from {source}; it starts from its fillers")
            found.append(locate_layer_error(w, step.layer.param, step.origin, plan.file))
    for w in found:
        w.locate(file=plan.file)
        log.warning(str(w))
    plan.warnings.extend(found)
    return ignored
