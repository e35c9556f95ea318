"""MVN: mean-variance normalization of each sample (per channel, or across channels)."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import count


@register
class MVN(Layer):
    """y = (x − mean)/(std + eps), statistics per (sample, channel) over the spatial axes, or
    per sample over (C, spatial) with ``across_channels``; without ``normalize_variance``
    only the mean is removed. Caffe adds eps to the standard deviation, not the variance.

    Backward (Caffe's): dx = (dy − mean(dy) − y·mean(dy·y))/(std + eps), or dy − mean(dy).
    It reads only the output and the kept std, so MVN may run in place.
    """

    type = "MVN"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = np.float32(p.eps)
        self._std = None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        groups = shape[0] if self.across_channels else count(shape, 0, min(2, len(shape)))
        self.view = (groups, count(shape) // groups if groups else 0)
        data = bottom[0].data
        if (self._std is None or self._std.shape != (groups, 1)
                or not isinstance(self._std, type(data))):
            self._std = bottom[0].xp.empty((groups, 1), dtype=np.float32)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.view)
        y = top[0].data.reshape(self.view)
        mean = x.mean(axis=1, keepdims=True, dtype=np.float32)
        xp.subtract(x, mean, out=y)
        if not self.normalize_variance:
            return
        std = self._std
        xp.mean(xp.square(y), axis=1, keepdims=True, dtype=np.float32, out=std)
        xp.sqrt(std, out=std)
        std += self.eps
        y /= std

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dy = top[0].diff.reshape(self.view)
        dx = bottom[0].diff.reshape(self.view)
        mean_dy = dy.mean(axis=1, keepdims=True, dtype=np.float32)
        if not self.normalize_variance:
            xp.subtract(dy, mean_dy, out=dx)
            return
        y = top[0].data.reshape(self.view)
        mean_dyy = (dy * y).mean(axis=1, keepdims=True, dtype=np.float32)
        grad = y * mean_dyy
        grad += mean_dy
        xp.subtract(dy, grad, out=grad)
        grad /= self._std
        dx[...] = grad
