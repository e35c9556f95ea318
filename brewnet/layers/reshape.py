"""Reshape: a new shape for the same values, with Caffe's 0 (copy) and -1 (infer) dims and the
``axis``/``num_axes`` window that limits which bottom axes are replaced."""

from __future__ import annotations

import math

from ..blob import Blob
from .registry import register
from .structure import ReshapedCopy


@register
class Reshape(ReshapedCopy):
    """Replaces bottom axes ``[axis, axis + num_axes)`` (all by default) with
    ``reshape_param.shape``: 0 copies the bottom dim at that position, one -1 is inferred from
    the element count. The values keep their order, so both passes are reshaped copies."""

    type = "Reshape"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        dims = [int(d) for d in self.param.reshape_param.shape.dim]
        self.dims = dims
        self.copy_axes = [i for i, d in enumerate(dims) if d == 0]
        inferred = [i for i, d in enumerate(dims) if d == -1]
        if len(inferred) > 1:
            raise self.error(f"reshape_param.shape {dims} has {len(inferred)} dims of -1; at "
                             f"most one may be inferred", field="reshape_param.shape")
        if any(d < -1 for d in dims):
            raise self.error(f"reshape_param.shape {dims} has a dim below -1; use positive "
                             f"sizes, 0 (copy) or -1 (infer)", field="reshape_param.shape")
        self.inferred_axis = inferred[0] if inferred else None
        self.constant_count = math.prod(d for d in dims if d > 0)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("Reshape cannot run in place; give its top another name")
        rp = self.param.reshape_param
        shape = tuple(bottom[0].data.shape)
        n = len(shape)
        start = rp.axis if rp.axis >= 0 else n + rp.axis + 1  # -1 means "after the last axis"
        if not 0 <= start <= n:
            raise self.shape_error(f"reshape_param.axis {rp.axis} is out of range for a bottom "
                                   f"with {n} axes; use a value in [{-n - 1}, {n}]",
                                   field="reshape_param.axis")
        if rp.num_axes < -1:
            raise self.shape_error(f"reshape_param.num_axes {rp.num_axes} must be >= -1",
                                   field="reshape_param.num_axes")
        end = n if rp.num_axes == -1 else start + rp.num_axes
        if end > n:
            raise self.shape_error(f"reshape_param axis {rp.axis} + num_axes {rp.num_axes} "
                                   f"reaches past the {n} axes of bottom shape {shape}",
                                   field="reshape_param")
        new = list(self.dims)
        for i in self.copy_axes:
            if start + i >= n:
                raise self.shape_error(f"reshape_param.shape has a 0 at position {i} but bottom "
                                       f"shape {shape} has no axis {start + i} to copy",
                                       field="reshape_param.shape")
            new[i] = shape[start + i]
        total = math.prod(shape)
        if self.inferred_axis is not None:
            explicit = (self.constant_count * math.prod(shape[:start]) * math.prod(shape[end:])
                        * math.prod(new[i] for i in self.copy_axes))
            if explicit == 0 or total % explicit:
                raise self.shape_error(f"bottom count {total} (shape {shape}) is not divisible "
                                       f"by the {explicit} elements the fixed dims of "
                                       f"reshape_param.shape {self.dims} give",
                                       field="reshape_param.shape")
            new[self.inferred_axis] = total // explicit
        out = shape[:start] + tuple(new) + shape[end:]
        if math.prod(out) != total:
            raise self.shape_error(f"reshape_param.shape {self.dims} gives shape {out} with "
                                   f"{math.prod(out)} elements but the bottom {shape} has "
                                   f"{total}", field="reshape_param.shape")
        top[0].reshape(out)
