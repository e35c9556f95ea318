"""Reduction: SUM, ASUM (sum of |x|), SUMSQ (sum of x²) or MEAN over every axis from
``axis`` to the end, times ``coeff``."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .registry import register
from .structure import canonical_axis, count

_OP = caffe_pb2.ReductionParameter


@register
class Reduction(Layer):
    """(outer, dim) -> (outer,), shaped bottom.shape[:axis] (a scalar with axis 0); MEAN
    divides by dim. Backward spreads coeff · dy over the reduced elements."""

    type = "Reduction"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.op = self.param.reduction_param.operation

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("Reduction cannot run in place; give its top another name")
        rp = self.param.reduction_param
        shape = tuple(bottom[0].data.shape)
        self.axis = canonical_axis(self, rp.axis, len(shape))
        self.outer = count(shape, 0, self.axis)
        self.dim = count(shape, self.axis)
        top[0].reshape(shape[:self.axis])
        coeff = float(rp.coeff)
        if self.op == _OP.MEAN:
            coeff /= self.dim  # Caffe folds the 1/dim of MEAN into the coefficient
        self.coeff = np.float32(coeff)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.outer, self.dim)
        if self.op == _OP.ASUM:
            x = xp.abs(x)
        elif self.op == _OP.SUMSQ:
            x = x * x
        y = top[0].data.reshape(self.outer)
        x.sum(axis=1, out=y)
        y *= self.coeff

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dy = (top[0].diff.reshape(self.outer, 1) * self.coeff)
        dx = bottom[0].diff.reshape(self.outer, self.dim)
        x = bottom[0].data.reshape(self.outer, self.dim)
        if self.op == _OP.ASUM:
            xp.multiply(xp.sign(x), dy, out=dx)
        elif self.op == _OP.SUMSQ:
            xp.multiply(x, dy * np.float32(2), out=dx)
        else:
            dx[...] = dy
