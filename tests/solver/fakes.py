"""A stand-in for brewnet.net.Net with the interface the solver uses: fixed parameter blobs
and a quadratic loss ½Σ‖w − target‖² whose gradient also carries a per-pass offset, so
iter_size accumulation is visible."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from brewnet.blob import Blob
from brewnet.proto import caffe_pb2

INIT = [np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.5]], np.float32),
        np.array([0.25, -0.75], np.float32)]
TARGET = [np.full((2, 3), 0.5, np.float32), np.array([-1.0, 1.0], np.float32)]


def pass_gradient(weights: list[np.ndarray], call: int) -> list[np.ndarray]:
    """The gradient pass number ``call`` adds: (w − target) + 0.1·call."""
    return [w - t + np.float32(0.1 * call) for w, t in zip(weights, TARGET, strict=True)]


class FakeNet:
    """Built as Net(param, state=..., source=...); lr/decay multipliers from class attributes."""

    params_lr = [1.0, 2.0]
    params_weight_decay = [1.0, 0.0]
    instances: list[FakeNet] = []

    def __init__(self, param: caffe_pb2.NetParameter, state=None, source=None, layout=None,
                 allow_python_layers=False, history_slots=0):
        self.name = param.name
        self.phase = state.phase
        self.state = state
        self.learnable_params = [Blob(a.shape) for a in INIT]
        for b, a in zip(self.learnable_params, INIT, strict=True):
            b.data[...] = a
        self.params_lr = list(type(self).params_lr)
        self.params_weight_decay = list(type(self).params_weight_decay)
        self.blobs = OrderedDict(loss=Blob(()), accuracy=Blob(()))
        self.outputs = ["accuracy", "loss"]
        self.blob_loss_weights = OrderedDict(loss=1.0, accuracy=0.0)
        self.calls = 0
        self.seeked_to: int | None = None
        self.shared_with = None
        FakeNet.instances.append(self)

    def _loss(self) -> float:
        loss = sum(0.5 * float(((b.data - t) ** 2).sum())
                   for b, t in zip(self.learnable_params, TARGET, strict=True))
        self.blobs["loss"].data[...] = loss
        self.blobs["accuracy"].data[...] = 0.25 * (self.calls % 4)
        return loss

    def forward_loss(self) -> float:
        loss = self._loss()
        self.calls += 1
        return loss

    def forward_backward(self) -> float:
        loss = self._loss()
        grads = pass_gradient([b.data for b in self.learnable_params], self.calls)
        for b, g in zip(self.learnable_params, grads, strict=True):
            b.diff[...] += g
        self.calls += 1
        return loss

    def clear_param_diffs(self) -> None:
        for b in self.learnable_params:
            b.diff[...] = 0

    def update(self) -> None:
        for b in self.learnable_params:
            b.data[...] -= b.diff

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        net = caffe_pb2.NetParameter(name=self.name)
        layer = net.layer.add(name="fake", type="Fake")
        for b in self.learnable_params:
            bp = layer.blobs.add()
            bp.shape.dim.extend(b.shape)
            bp.data.extend(b.data.ravel().tolist())
        return net

    def copy_from(self, path) -> None:
        net = caffe_pb2.NetParameter.FromString(open(path, "rb").read())
        for b, bp in zip(self.learnable_params, net.layer[0].blobs, strict=True):
            b.data[...] = np.asarray(bp.data, np.float32).reshape(b.shape)

    def share_with(self, other: FakeNet) -> None:
        self.shared_with = other
        for mine, theirs in zip(self.learnable_params, other.learnable_params, strict=True):
            mine.data[...] = theirs.data

    def seek_data(self, batch: int) -> None:
        """Like data layers seeking (absolute): the next pass is pass number ``batch``."""
        self.seeked_to = batch
        self.calls = batch

    def close(self) -> None:
        pass
