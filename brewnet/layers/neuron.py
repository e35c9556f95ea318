"""Elementwise activation layers (Caffe's neuron layers): each top has its bottom's shape and
may be the bottom itself (in place)."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from .base import Layer
from .registry import register


@register
class ReLU(Layer):
    """y = max(x, 0) + negative_slope·min(x, 0), any shape.

    Backward tests ``bottom.data > 0``; in place that is the output, which keeps the input's
    sign (for negative_slope >= 0), so in-place ReLU is safe as in Caffe.
    """

    type = "ReLU"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.slope = np.float32(self.param.relu_param.negative_slope)
        self._scratch = None  # float32 buffer for the leaky variant, sized in reshape
        self._mask = None  # bool buffer for backward, sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        xp, shape = bottom[0].xp, bottom[0].data.shape
        if self._mask is None or self._mask.shape != shape or not isinstance(
                self._mask, type(bottom[0].data)):
            self._mask = xp.empty(shape, dtype=bool)
            self._scratch = xp.empty(shape, dtype=np.float32) if self.slope != 0 else None

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp, x, y = bottom[0].xp, bottom[0].data, top[0].data
        if self.slope == 0:
            xp.maximum(x, 0, out=y)
            return
        neg = self._scratch
        xp.minimum(x, 0, out=neg)
        neg *= self.slope
        xp.maximum(x, 0, out=y)  # x is read before y overwrites it, elementwise
        y += neg

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        positive = xp.greater(bottom[0].data, 0, out=self._mask)
        if self.slope == 0:
            xp.multiply(top[0].diff, positive, out=bottom[0].diff)
            return
        # factor = 1 where x > 0, negative_slope elsewhere
        factor = self._scratch
        xp.multiply(positive, np.float32(1 - self.slope), out=factor)
        factor += self.slope
        xp.multiply(top[0].diff, factor, out=bottom[0].diff)
