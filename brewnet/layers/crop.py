"""Crop (Caffe's ``CropLayer``): cut bottom[0] down to bottom[1]'s shape from ``axis`` on.

Top shape: bottom[0]'s axes before ``axis`` (default 2), bottom[1]'s from ``axis`` on. Each
cropped axis starts at its ``offset``: none given means 0, one applies to every cropped axis,
otherwise one per cropped axis. bottom[1] only supplies a shape, so it gets no gradient.
"""

from __future__ import annotations

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis


@register
class CropLayer(Layer):
    """``top = bottom[0][..., o_a : o_a + S_a, ...]`` for each axis ``a >= axis``."""

    type = "Crop"
    exact_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.crop_param
        ndim = bottom[0].data.ndim
        if bottom[1].data.ndim != ndim:
            raise self.shape_error(f"bottom[0] has {ndim} axes but bottom[1] has "
                                   f"{bottom[1].data.ndim}; both must have the same number")
        self._axis = canonical_axis(self, p.axis, ndim)
        cropped = ndim - self._axis
        offsets = [int(o) for o in p.offset]
        if len(offsets) not in (0, 1, cropped):
            raise self.error(f"offset must be given 0, 1 or {cropped} times (once per axis "
                             f"from axis {self._axis}); got {len(offsets)} values")
        self._offsets = offsets * cropped if len(offsets) == 1 else offsets or [0] * cropped

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        big, small = tuple(bottom[0].shape), tuple(bottom[1].shape)
        if len(big) != len(small):
            raise self.shape_error(f"bottom[0] has {len(big)} axes but bottom[1] has "
                                   f"{len(small)}; both must have the same number")
        index = [slice(None)] * self._axis
        for a, offset in enumerate(self._offsets, start=self._axis):
            if offset + small[a] > big[a]:
                raise self.shape_error(f"axis {a}: offset {offset} + size {small[a]} exceeds "
                                       f"bottom[0]'s size {big[a]}; lower the crop offset")
            index.append(slice(offset, offset + small[a]))
        self._index = tuple(index)
        top[0].reshape(*big[:self._axis], *small[self._axis:])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        bottom[0].xp.copyto(top[0].data, bottom[0].data[self._index])

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down and propagate_down[0]:
            dx = bottom[0].diff
            dx.fill(0)
            dx[self._index] = top[0].diff
