"""ArgMax: the indices (and optionally values) of the ``top_k`` largest entries per sample,
or along one axis. Outputs are indices stored as floats; there is no gradient."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis, count


@register
class ArgMax(Layer):
    """Without ``axis``: each sample (count(1..) values) gives top (N, 1, top_k, 1, ...) of
    indices, or (N, 2, top_k, ...) with ``out_max_val`` (indices, then values); the top has
    max(3, bottom axes) axes. With ``axis``: that axis becomes top_k, holding indices, or only
    the values with ``out_max_val``. Order as Caffe's partial_sort by (value, index) descending:
    equal values put the larger index first."""

    type = "ArgMax"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        ap = self.param.argmax_param
        self.out_max_val = bool(ap.out_max_val)
        self.top_k = int(ap.top_k)
        if self.top_k < 1:
            raise self.error("argmax_param.top_k must be at least 1", field="argmax_param.top_k")
        shape = tuple(bottom[0].data.shape)
        if ap.HasField("axis"):
            self.axis = canonical_axis(self, ap.axis, len(shape))
            if self.top_k > shape[self.axis]:
                raise self.shape_error(f"argmax_param.top_k {self.top_k} exceeds the "
                                       f"{shape[self.axis]} entries of axis {self.axis}",
                                       field="argmax_param.top_k")
        else:
            self.axis = None
            if self.top_k > count(shape, 1):
                raise self.shape_error(f"argmax_param.top_k {self.top_k} exceeds the "
                                       f"{count(shape, 1)} values per sample of {shape}",
                                       field="argmax_param.top_k")

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("ArgMax cannot run in place; give its top another name")
        shape = tuple(bottom[0].data.shape)
        if self.axis is not None:
            out = list(shape)
            out[self.axis] = self.top_k
        else:
            out = [1] * max(3, len(shape))
            out[0] = shape[0]
            out[1] = 2 if self.out_max_val else 1
            out[2] = self.top_k
        top[0].reshape(tuple(out))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data
        if self.axis is None:
            x = x.reshape(x.shape[0], -1)
        else:
            x = xp.moveaxis(x, self.axis, -1)
        # A stable ascending sort keeps equal values in index order; reversed, it is Caffe's
        # descending (value, index) order. (CuPy's argsort is always stable.)
        kwargs = {"kind": "stable"} if xp is np else {}
        order = xp.argsort(x, axis=-1, **kwargs)[..., ::-1][..., :self.top_k]
        if self.axis is None:
            y = top[0].data.reshape(x.shape[0], -1, self.top_k)
            y[:, 0, :] = order
            if self.out_max_val:
                y[:, 1, :] = xp.take_along_axis(x, order, axis=-1)
            return
        result = xp.take_along_axis(x, order, axis=-1) if self.out_max_val else order
        top[0].data[...] = xp.moveaxis(result, -1, self.axis)
