"""Elementwise activation layers (Caffe's neuron layers): each top has its bottom's shape and
may be the bottom itself (in place)."""

from __future__ import annotations

from typing import Any

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


def _scratch_like(buffer: Any, like: Any, xp: Any) -> Any:
    """``buffer`` if it still fits ``like`` (shape and array module), else a new float32 one."""
    if buffer is None or buffer.shape != like.shape or not isinstance(buffer, type(like)):
        return xp.empty(like.shape, dtype=np.float32)
    return buffer


def sigmoid_into(x: Any, out: Any, xp: Any) -> Any:
    """out = 1/(1+exp(-x)), written as 0.5·tanh(x/2) + 0.5 (as Caffe's CPU sigmoid): no
    overflow for any float32 x, and exactly 0 or 1 only where float32 rounds there.
    ``out`` may be ``x``."""
    xp.multiply(x, np.float32(0.5), out=out)
    xp.tanh(out, out=out)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


@register
class Sigmoid(Layer):
    """y = 1/(1+exp(-x)), any shape; backward dx = dy·y·(1-y).

    Backward reads only the output, so in-place Sigmoid is safe as in Caffe.
    """

    type = "Sigmoid"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._scratch = None  # y·(1-y) in backward, sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        self._scratch = _scratch_like(self._scratch, bottom[0].data, bottom[0].xp)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        sigmoid_into(bottom[0].data, top[0].data, bottom[0].xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp, y, slope = bottom[0].xp, top[0].data, self._scratch
        xp.subtract(np.float32(1), y, out=slope)
        slope *= y
        xp.multiply(top[0].diff, slope, out=bottom[0].diff)


@register
class TanH(Layer):
    """y = tanh(x), any shape; backward dx = dy·(1-y²).

    Backward reads only the output, so in-place TanH is safe as in Caffe.
    """

    type = "TanH"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._scratch = None  # 1-y² in backward, sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        self._scratch = _scratch_like(self._scratch, bottom[0].data, bottom[0].xp)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        bottom[0].xp.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp, y, slope = bottom[0].xp, top[0].data, self._scratch
        xp.multiply(y, y, out=slope)
        xp.subtract(np.float32(1), slope, out=slope)
        xp.multiply(top[0].diff, slope, out=bottom[0].diff)
