"""Concat and Slice: joining blobs along one axis and cutting one blob into pieces along an
axis. Each is the other's backward pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores
from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis


def _legacy_or_axis(layer: Layer, msg, legacy_field: str, num_axes: int) -> int:
    """The legacy ``*_dim`` field (non-negative, counted from 0) when set, else ``axis``;
    Caffe refuses both at once."""
    if msg.HasField(legacy_field) and msg.HasField("axis"):
        raise layer.error(f"give either axis or the legacy {legacy_field}, not both")
    if msg.HasField(legacy_field):
        dim = int(getattr(msg, legacy_field))
        if dim >= num_axes:
            raise layer.shape_error(f"{legacy_field} {dim} is out of range for a bottom with "
                                    f"{num_axes} axes")
        return dim
    return canonical_axis(layer, int(msg.axis), num_axes)


def _same_memory(a: Any, b: Any) -> bool:
    """Whether NumPy arrays ``a`` and ``b`` are views of the same values."""
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.strides == b.strides and a.ctypes.data == b.ctypes.data)


def _copy(xp: Any, axis: int, pairs: list[tuple[Any, Any]]) -> None:
    """``dst[...] = src`` for each ``(dst, src)`` pair, split over the cores by samples (the
    first axis) when the sections lie along a later one: SqueezeNet's and GoogLeNet's
    channel joins are memory-bound copies as large as the convolutions' outputs."""
    if not pairs:
        return
    n = pairs[0][0].shape[0] if axis > 0 else 1
    row = sum(dst.size for dst, _ in pairs) // max(n, 1)

    def copy(start: int, stop: int) -> None:
        for dst, src in pairs:
            if axis > 0:
                dst, src = dst[start:stop], src[start:stop]
            xp.copyto(dst, src)

    cores.split(xp, n, copy, minimum=-(-cores.FLAT_MINIMUM // max(row, 1)))


@register
class Concat(Layer):
    """Joins the bottoms along ``axis`` (default 1, channels): every other axis must agree.
    Backward hands each bottom its own section of the top diff."""

    type = "Concat"
    reshape_reads_blobs_only = True
    min_bottom = 1
    exact_num_top = 1
    # Per bottom, whether it may be a view of its section of the top (net/joins.py); none
    # unless the compiler says so.
    joined: tuple[bool, ...] = ()
    _views: tuple = ()  # per bottom, the section its blob was last made a view of, or None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if any(top[0] is b for b in bottom):
            raise self.error("Concat cannot run in place; give its top another name")
        first = tuple(bottom[0].data.shape)
        self.axis = _legacy_or_axis(self, self.param.concat_param, "concat_dim", len(first))
        total = 0
        for i, b in enumerate(bottom):
            shape = tuple(b.data.shape)
            if (len(shape) != len(first) or shape[:self.axis] != first[:self.axis]
                    or shape[self.axis + 1:] != first[self.axis + 1:]):
                raise self.shape_error(f"bottom {i} has shape {shape} but bottom 0 has {first}; "
                                       f"all axes except the concat axis {self.axis} must match")
            total += shape[self.axis]
        top[0].reshape(first[:self.axis] + (total,) + first[self.axis + 1:])
        # section boundaries along the axis, for both passes
        self.bounds = []
        start = 0
        for b in bottom:
            self.bounds.append((start, start + b.data.shape[self.axis]))
            start += b.data.shape[self.axis]
        self.join(bottom, top)

    def join(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Make each ``joined`` bottom a view of its section of the top, its values moved
        there, where the section is contiguous (each axis before ``axis`` of length 1)."""
        data = top[0].data
        if (not self.joined or not isinstance(data, np.ndarray)
                or any(d != 1 for d in data.shape[:self.axis])):
            self._views = ()
            return
        views = []
        for i, b in enumerate(bottom):
            section = self._section(data, i)
            if self.joined[i] and not _same_memory(b.data, section):
                section[...] = b.data
                b.adopt_data(section)
            views.append(b.data if self.joined[i] else None)
        self._views = tuple(views)

    def _section(self, array, i: int):
        lo, hi = self.bounds[i]
        return array[(slice(None),) * self.axis + (slice(lo, hi),)]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        views = self._views or (None,) * len(bottom)
        _copy(top[0].xp, self.axis, [(self._section(top[0].data, i), b.data)
                                     for i, b in enumerate(bottom) if b.data is not views[i]])

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        _copy(top[0].xp, self.axis, [(b.diff, self._section(top[0].diff, i))
                                     for i, b in enumerate(bottom) if propagate_down[i]])


@register
class Slice(Layer):
    """Cuts the bottom along ``axis`` (default 1) at ``slice_point`` (one fewer than the tops,
    strictly increasing), or into equal parts when none are given. Backward reassembles."""

    type = "Slice"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if any(t is bottom[0] for t in top):
            raise self.error("Slice cannot run in place; give its tops other names")
        sp = self.param.slice_param
        shape = tuple(bottom[0].data.shape)
        self.axis = _legacy_or_axis(self, sp, "slice_dim", len(shape))
        length = shape[self.axis]
        points = [int(p) for p in sp.slice_point]
        if points:
            if len(points) != len(top) - 1:
                raise self.error(f"slice_param has {len(points)} slice_point(s) for {len(top)} "
                                 f"tops; give exactly one fewer than the number of tops",
                                 field="slice_param")
            edges = [0, *points, length]
            if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise self.shape_error(f"slice_point {points} must increase strictly within "
                                       f"(0, {length}) along axis {self.axis} of {shape}")
        else:
            if length % len(top):
                raise self.shape_error(f"axis {self.axis} of {shape} has {length} entries, "
                                       f"which do not split evenly into {len(top)} tops; "
                                       f"give slice_point")
            step = length // len(top)
            edges = [step * i for i in range(len(top) + 1)]
        self.bounds = list(zip(edges, edges[1:], strict=False))
        for t, (lo, hi) in zip(top, self.bounds, strict=True):
            t.reshape(shape[:self.axis] + (hi - lo,) + shape[self.axis + 1:])

    def _section(self, array, i: int):
        lo, hi = self.bounds[i]
        return array[(slice(None),) * self.axis + (slice(lo, hi),)]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        _copy(bottom[0].xp, self.axis,
              [(t.data, self._section(bottom[0].data, i)) for i, t in enumerate(top)])

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        _copy(bottom[0].xp, self.axis,
              [(self._section(bottom[0].diff, i), t.diff) for i, t in enumerate(top)])
