"""Dropout: zero each input with probability p during training.

Caffe's dropout is *inverted*: kept values are scaled by 1/(1-p) at train time so the test-time
pass is the identity. BVLC's ``DropoutParameter`` has only ``dropout_ratio``, so there is no
other form.
"""

from __future__ import annotations

import numpy as np

from .. import rng
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .registry import register


@register
class Dropout(Layer):
    """y = x·mask/(1-p) in TRAIN, mask ~ Bernoulli(1-p) drawn from brewnet.rng; y = x in TEST;
    any shape."""

    type = "Dropout"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        dp = self.param.dropout_param
        self.ratio = float(dp.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio {self.ratio} must be in [0, 1)")
        self.scale = np.float32(1.0 / (1.0 - self.ratio))
        self._uniform = None  # float32 draws on the host, sized in reshape
        self._keep = None  # bool mask on the blob's device

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        shape = bottom[0].data.shape
        if self.phase == caffe_pb2.TRAIN and (
                self._uniform is None or self._uniform.shape != shape
                or not isinstance(self._keep, type(bottom[0].data))):
            self._uniform = np.empty(shape, dtype=np.float32)
            self._keep = bottom[0].xp.empty(shape, dtype=bool)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp, x, y = bottom[0].xp, bottom[0].data, top[0].data
        if self.phase != caffe_pb2.TRAIN:
            if y is not x:
                xp.copyto(y, x)
            return
        rng.generator().random(dtype=np.float32, out=self._uniform)
        if xp is np:
            np.greater_equal(self._uniform, np.float32(self.ratio), out=self._keep)
        else:  # draws are made on the host so one seed fixes CPU and GPU runs alike
            self._keep[...] = xp.asarray(self._uniform >= np.float32(self.ratio))
        xp.multiply(x, self._keep, out=y)
        if self.scale != 1:
            y *= self.scale

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp, dy, dx = bottom[0].xp, top[0].diff, bottom[0].diff
        if self.phase != caffe_pb2.TRAIN:
            if dx is not dy:
                xp.copyto(dx, dy)
            return
        xp.multiply(dy, self._keep, out=dx)
        if self.scale != 1:
            dx *= self.scale
