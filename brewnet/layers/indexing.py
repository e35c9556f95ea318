"""Layers that pick rows of the batch by index: BatchReindex (gather by an index blob) and
Filter (keep the rows whose selector is non-zero)."""

from __future__ import annotations

from typing import Any

from ..blob import Blob
from .base import Layer
from .registry import register


@register
class BatchReindex(Layer):
    """top[i] = bottom0[index[i]] for the 1-axis index blob bottom1 (indices as floats, each
    in [0, N)); top is (len(index),) + bottom0.shape[1:]. Backward scatter-adds, so a row
    picked twice gets both gradients; the indices get none."""

    type = "BatchReindex"
    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index: int) -> bool:
        """The index bottom has no gradient."""
        return bottom_index == 0

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("BatchReindex cannot run in place; give its top another name")
        if bottom[1].data.ndim != 1:
            raise self.shape_error(f"the index bottom must have 1 axis, not shape "
                                   f"{tuple(bottom[1].data.shape)}")
        top[0].reshape(tuple(bottom[1].data.shape) + tuple(bottom[0].data.shape[1:]))

    def _indices(self, bottom: list[Blob]) -> Any:
        xp = bottom[0].xp
        x = bottom[1].data
        idx = x.astype(xp.int64)
        n = bottom[0].data.shape[0]
        bad = (idx != x) | (idx < 0) | (idx >= n)
        if x.size and bool(bad.any()):
            raise self.error(f"index {float(x[bad][0])} is not a whole number in [0, {n}) "
                             f"(the batch size of bottom 0)")
        return idx

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        xp.take(bottom[0].data, self._indices(bottom), axis=0, out=top[0].data)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the index bottom; set propagate_down: "
                             "false on it", field="propagate_down")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        bottom[0].diff[...] = 0
        xp.add.at(bottom[0].diff, self._indices(bottom), top[0].diff)


@register
class Filter(Layer):
    """The last bottom is a selector of shape (N,) or (N, 1, ...); every other bottom i gives
    top i = its rows where the selector is non-zero. The selected rows are read at reshape
    (as Caffe does, before each forward); the very first reshape keeps all N rows since the
    selector holds no data yet. Backward scatters the diff back, zero elsewhere."""

    type = "Filter"
    min_bottom = 2
    min_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        if len(top) != len(bottom) - 1:
            raise self.error(f"Filter needs one top per filtered bottom: {len(bottom) - 1} "
                             f"top(s), got {len(top)}")
        self._first_reshape = True

    def allow_force_backward(self, bottom_index: int) -> bool:
        """The selector (last bottom) has no gradient."""
        return bottom_index != len(self.param.bottom) - 1

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        selector = bottom[-1].data
        if any(d != 1 for d in selector.shape[1:]) or selector.ndim == 0:
            raise self.shape_error(f"the selector (last bottom) has shape "
                                   f"{tuple(selector.shape)}; it must be (N,) or (N, 1, ...)")
        n = selector.shape[0]
        for i, b in enumerate(bottom[:-1]):
            if b is top[i]:
                raise self.error("Filter cannot run in place; give its tops other names")
            if b.data.ndim == 0 or b.data.shape[0] != n:
                raise self.shape_error(f"bottom {i} has shape {tuple(b.data.shape)} but the "
                                       f"selector has {n} rows; their first axes must agree")
        xp = bottom[0].xp
        self.indices = xp.flatnonzero(selector.reshape(-1))
        rows = n if self._first_reshape else int(self.indices.size)
        self._first_reshape = False
        for b, t in zip(bottom[:-1], top, strict=True):
            t.reshape((rows,) + tuple(b.data.shape[1:]))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        k = int(self.indices.size)  # the first pass may have more top rows (Caffe fills k)
        for b, t in zip(bottom[:-1], top, strict=True):
            xp.take(b.data, self.indices, axis=0, out=t.data[:k])

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to the selector (last bottom); set "
                             "propagate_down: false on it", field="propagate_down")
        for want, b, t in zip(propagate_down, bottom, top, strict=False):
            if want:
                b.diff[...] = 0
                b.diff[self.indices] = t.diff[:self.indices.size]
