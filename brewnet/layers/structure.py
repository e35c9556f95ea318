"""Layers that only move values between blobs: Split (one blob to many consumers) and Flatten
(collapse a range of axes); plus the axis helpers shared by the layers that take an ``axis``.
"""

from __future__ import annotations

import math

from .. import cores
from ..blob import Blob
from .base import Layer
from .registry import register


def canonical_axis(layer: Layer, axis: int, num_axes: int, field: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex: ``axis`` in [-num_axes, num_axes), negative counts from the
    end; anything else is a ShapeError naming the layer and the parameter field."""
    if not -num_axes <= axis < num_axes:
        raise layer.shape_error(f"{field} {axis} is out of range for a bottom with {num_axes} "
                                f"axes; use a value in [{-num_axes}, {num_axes})")
    return axis + num_axes if axis < 0 else axis


def count(shape: tuple[int, ...] | list[int], start: int = 0, end: int | None = None) -> int:
    """The number of elements in axes ``start..end-1`` of ``shape`` (Caffe's Blob::count)."""
    return math.prod(shape[start:end])


@register
class Split(Layer):
    """One bottom to every top; backward sums the top diffs (a blob read by several layers
    receives the sum of their gradients). The net inserts these automatically. As Caffe's,
    the tops share the bottom's data array (ShareData) instead of holding copies: nothing
    writes a split top (a layer in place on one would be a second producer of its name).
    The diffs stay separate, as Caffe's: a top whose reader sends no gradient (Accuracy,
    propagate_down: false) keeps its diff as it was, so a bottom diff shared with top 0
    would keep the last sum and grow by it every iteration."""

    type = "Split"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    min_top = 1
    keeps_coordinates = True

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        for i, t in enumerate(top):
            if t is bottom[0]:
                raise self.error(f"top {i} is the bottom blob; Split cannot run in place")
            t.reshape_like(bottom[0])
            t.share_data(bottom[0])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing to compute: reshape shared the bottom's data with the tops."""

    def passed_over(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Share the bottom's array again: a data layer's forward since this layer's last
        one may have replaced it (its tops adopt each batch's array), and the buffer the
        tops still hold goes back to the prefetch thread (Caffe's split tops share the
        blob's memory object, so they never fall behind)."""
        self.reshape(bottom, top)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp, diff = bottom[0].xp, bottom[0].diff.reshape(-1)
        diffs = [t.diff.reshape(-1) for t in top]

        def add(a: int, b: int) -> None:
            if len(diffs) == 1:
                xp.copyto(diff[a:b], diffs[0][a:b])
                return
            xp.add(diffs[0][a:b], diffs[1][a:b], out=diff[a:b])
            for d in diffs[2:]:
                diff[a:b] += d[a:b]

        cores.flat(xp, diff.size, add)


class ReshapedCopy(Layer):
    """A layer whose top holds the bottom's values in the same order under another shape
    (Flatten, Reshape): both passes are copies through a reshape."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].data[...] = bottom[0].data.reshape(top[0].data.shape)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].diff.shape)


@register
class Flatten(ReshapedCopy):
    """Collapses axes ``axis..end_axis`` (inclusive) into one: (N, C, H, W) -> (N, C·H·W) with
    the defaults. Values are unchanged, so both passes are reshaped copies."""

    type = "Flatten"
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("Flatten cannot run in place; give its top another name")
        shape = tuple(bottom[0].data.shape)
        fp = self.param.flatten_param
        start = canonical_axis(self, fp.axis, len(shape))
        end = canonical_axis(self, fp.end_axis, len(shape), field="end_axis")
        if end < start:
            raise self.shape_error(f"end_axis {fp.end_axis} comes before axis {fp.axis} for a "
                                   f"bottom of shape {shape}")
        top[0].reshape(shape[:start] + (count(shape, start, end + 1),) + shape[end + 1:])
