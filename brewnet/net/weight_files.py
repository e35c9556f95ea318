"""A net's weights in and out of files — .caffemodel (binary NetParameter) and .caffemodel.h5 —
and shared with another net: the weight methods of :class:`brewnet.net.Net`, over its plan."""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf.message import DecodeError

from ..errors import BrewnetError, NetError, ShapeError, WeightsError
from ..proto import caffe_pb2
from ..proto.binaryio import read_net_binary, write_binary
from ..proto.upgrade import upgrade_net
from .hdf5_weights import is_hdf5_path, load_hdf5_weights, save_hdf5_weights
from .plan import Plan
from .weights import blob_to_proto, copy_trained_layers


class WeightFiles:
    """Mixed into Net, which provides ``plan`` and ``name``."""

    plan: Plan
    name: str

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as a NetParameter with its parameter blobs (a .caffemodel's content)."""
        out = caffe_pb2.NetParameter(name=self.name)
        for step in self.plan.steps:
            lp = out.layer.add()
            lp.CopyFrom(step.layer.param)
            del lp.blobs[:]
            for blob in step.layer.blobs:
                lp.blobs.append(blob_to_proto(blob, write_diff))
        return out

    def copy_trained_layers_from(self, param: caffe_pb2.NetParameter, source: str = "") -> None:
        """Copy weights layer by layer, matching by name (Caffe's CopyTrainedLayersFrom)."""
        if len(param.layers):
            upgrade_net(param, source or "weights")
        copy_trained_layers(self.plan, param, source)

    def copy_from(self, path: str | os.PathLike) -> None:
        """Load weights from a .caffemodel (binary NetParameter) or, by its ``.h5`` suffix as
        Caffe decides, a .caffemodel.h5."""
        path = os.fspath(path)
        if Path(path).is_dir():
            raise WeightsError("is a folder, not a weights file; pass the .caffemodel inside "
                               "it", file=path)
        if not Path(path).is_file():
            raise BrewnetError(f"{path}: weights file not found")
        if is_hdf5_path(path):
            load_hdf5_weights(self.plan, path)
            return
        try:
            param = read_net_binary(path)
        except WeightsError as e:
            raise _solver_state_instead(path) or e from None
        self.copy_trained_layers_from(param, path)

    def save_hdf5(self, path: str | os.PathLike) -> None:
        """Write the weights as a .caffemodel.h5 (pycaffe's save_hdf5; needs h5py)."""
        save_hdf5_weights(self.plan, path)

    def load_hdf5(self, path: str | os.PathLike) -> None:
        """Load weights from a .caffemodel.h5 (pycaffe's load_hdf5; needs h5py)."""
        load_hdf5_weights(self.plan, path)

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights as a binary .caffemodel, atomically."""
        write_binary(path, self.to_proto())

    def share_with(self, other: WeightFiles) -> None:
        """Use ``other``'s parameter values in the layers both nets name alike (Caffe's
        ShareTrainedLayersWith: data is shared, gradients are not)."""
        mine = {step.name: step.layer for step in self.plan.steps}
        for step in other.plan.steps:
            name, src = step.name, step.layer
            dst = mine.get(name)
            if dst is None:
                continue
            if len(dst.blobs) != len(src.blobs):
                raise NetError(f"cannot share weights: {len(src.blobs)} blobs in the source "
                               f"layer, {len(dst.blobs)} here", layer=name, layer_type=dst.type)
            for j, (d, s) in enumerate(zip(dst.blobs, src.blobs, strict=True)):
                if d.shape != s.shape:
                    raise ShapeError(f"cannot share parameter {j}: shape {tuple(s.shape)} in "
                                     f"the source net, {tuple(d.shape)} here", layer=name,
                                     layer_type=dst.type)
                d.share_data(s)


def _solver_state_instead(path: str) -> WeightsError | None:
    """The error for a .solverstate given as weights (it does not decode as a net), or None
    when the file is no solver state either."""
    try:
        with open(path, "rb") as f:
            state = caffe_pb2.SolverState.FromString(f.read())
    except (OSError, DecodeError):
        return None
    if not state.HasField("iter"):
        return None
    weights = f" (or its weights, {state.learned_net}, as weights)" if state.learned_net else ""
    return WeightsError(f"this is a .solverstate (training state at iteration {state.iter}), "
                        f"not weights; resume from it with --snapshot (Solver.restore)"
                        f"{weights}", file=path)
