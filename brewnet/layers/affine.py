"""Bias and Scale: add or multiply a (learned or given) tensor broadcast along the bottom's
axes ``axis .. axis+num_axes``; Scale with ``bias_term`` is BatchNorm's affine partner."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores, kernels
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer, learnable_shape_check
from .registry import register
from .structure import canonical_axis, count


def _param_shape(layer: Layer, shape: tuple[int, ...], axis_field: int,
                 num_axes: int) -> tuple[int, ...]:
    """The learned operand's shape: ``shape[axis:axis+num_axes]`` (num_axes -1: to the end),
    checked as Caffe's Bias/Scale LayerSetUp."""
    if num_axes < -1:
        raise layer.error(f"num_axes {num_axes} must be -1 (to the end) or at least 0")
    axis = canonical_axis(layer, axis_field, len(shape))
    if num_axes >= 0 and axis + num_axes > len(shape):
        raise layer.shape_error(f"axis {axis} with num_axes {num_axes} runs past the bottom's "
                                f"{len(shape)} axes {shape}")
    return tuple(shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes])


class _Broadcast(Layer):
    """Shared shape logic: the bottom is viewed as (outer, dim, inner) where dim is the
    operand's element count and the operand as (1, dim, 1)."""

    reshape_reads_blobs_only = True
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def _operand(self, bottom: list[Blob]) -> Blob:
        raise NotImplementedError

    def _fit(self, bottom: list[Blob]) -> None:
        """Set self.axis and self.view (outer, dim, inner) for the current shapes."""
        shape = tuple(bottom[0].data.shape)
        operand = tuple(self._operand(bottom).data.shape)
        field = self._field().axis
        self.axis = 0 if len(operand) == 0 else canonical_axis(self, field, len(shape))
        if shape[self.axis:self.axis + len(operand)] != operand:
            which = "bottom[1]" if len(bottom) > 1 else "the parameter blob"
            raise self.shape_error(f"{which} has shape {operand} but bottom[0] {shape} has "
                                   f"{shape[self.axis:self.axis + len(operand)]} at axis "
                                   f"{self.axis}; they must match")
        self.view = (count(shape, 0, self.axis), count(operand),
                     count(shape, self.axis + len(operand)))

    def _field(self) -> Any:
        raise NotImplementedError

    def _sum_to_operand(self, values: Any, out_shape: tuple[int, ...]) -> Any:
        """Sum an (outer, dim, inner) array over outer and inner, shaped as the operand."""
        return values.sum(axis=(0, 2), dtype=np.float32).reshape(out_shape)


@register
class Bias(_Broadcast):
    """top = bottom[0] + b, with b a learned blob of shape bottom.shape[axis:axis+num_axes]
    (filler default constant 0) or, with two bottoms, bottom[1] (no parameter).
    Backward: bottom diff = dy; b's gradient is dy summed over the other axes."""

    type = "Bias"

    def _field(self) -> Any:
        return self.param.bias_param

    def _operand(self, bottom: list[Blob]) -> Blob:
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        if len(bottom) > 1:
            return  # the values come from bottom[1]
        p = self.param.bias_param
        shape = _param_shape(self, tuple(bottom[0].data.shape), p.axis, p.num_axes)
        if self.blobs:
            if len(self.blobs) != 1:
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs 1")
            learnable_shape_check(self, 0, shape)
            return
        self.blobs.append(self.fill_blob(p.filler, shape, "filler", bottom[0].xp))

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._fit(bottom)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        b = self._operand(bottom).data.reshape(1, self.view[1], 1)
        bottom[0].xp.add(bottom[0].data.reshape(self.view), b, out=top[0].data.reshape(self.view))

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        dy = top[0].diff.reshape(self.view)
        if len(bottom) > 1:
            if propagate_down[1]:
                bottom[1].diff[...] = self._sum_to_operand(dy, bottom[1].diff.shape)
        elif self.param_propagate_down[0]:
            self.blobs[0].diff += self._sum_to_operand(dy, self.blobs[0].diff.shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = top[0].diff


@register
class Scale(_Broadcast):
    """top = bottom[0]·s (+ b with ``bias_term``), s broadcast like Bias's operand: a learned
    blob (filler default constant 1) or bottom[1]. Parameter blobs: [s, b] with one bottom,
    [b] with two. Backward: bottom diff = dy·s; s's gradient Σ dy·x, b's Σ dy over the other
    axes. In place, forward keeps a copy of the input for s's gradient (as Caffe), unless
    the layer that wrote the bottom kept one already (BatchNorm's normalized batch)."""

    type = "Scale"

    def _field(self) -> Any:
        return self.param.scale_param

    def _operand(self, bottom: list[Blob]) -> Blob:
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.scale_param
        xp = bottom[0].xp
        self._input = None  # the input of an in-place forward: _copy or the producer's
        self._copy = None
        self._producer: Layer | None = None
        self.bias_term = bool(p.bias_term)
        bshape = tuple(bottom[0].data.shape)
        if len(bottom) > 1:
            shape = tuple(bottom[1].data.shape)  # matched against bottom[0] in reshape
            shapes = [shape] if self.bias_term else []
        else:
            shape = _param_shape(self, bshape, p.axis, p.num_axes)
            shapes = [shape, shape] if self.bias_term else [shape]
        if self.blobs:
            if len(self.blobs) != len(shapes):
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs "
                                       f"{len(shapes)} (bias_term: "
                                       f"{str(self.bias_term).lower()})")
            for j, s in enumerate(shapes):
                learnable_shape_check(self, j, s)
            return
        if len(bottom) == 1:
            filler = p.filler
            if not p.HasField("filler"):
                filler = caffe_pb2.FillerParameter(type="constant", value=1.0)
            self.blobs.append(self.fill_blob(filler, shape, "filler", xp))
        if self.bias_term:
            self.blobs.append(self.fill_blob(p.bias_filler, shape, "bias_filler", xp))

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._fit(bottom)
        if self.bias_term:
            learnable_shape_check(self, len(self.blobs) - 1,
                                  tuple(self._operand(bottom).data.shape))
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def follows(self, producer: Layer) -> None:
        self._producer = producer

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp, x = bottom[0].xp, bottom[0].data
        if top[0] is bottom[0]:
            kept = self._producer.kept_top() if self._producer is not None else None
            if kept is not None and kept.size == x.size and isinstance(kept, type(x)):
                self._input = kept.reshape(x.shape)
            else:  # allocated on first need: a Scale after BatchNorm never needs it
                if (self._copy is None or self._copy.shape != x.shape
                        or not isinstance(self._copy, type(x))):
                    self._copy = xp.empty(x.shape, dtype=np.float32)
                self._copy[...] = x
                self._input = self._copy
        s = self._operand(bottom).data.reshape(1, self.view[1], 1)
        y = top[0].data.reshape(self.view)
        if kernels.enabled(xp):
            from ..kernels.batch_norm import scale_forward

            bias = self.blobs[-1].data.reshape(-1) if self.bias_term else kernels.SKIP
            x, s = x.reshape(self.view), s.reshape(-1)
            cores.split(xp, self.view[1], lambda a, b: scale_forward(x, s, bias, y, a, b))
            return
        xp.multiply(x.reshape(self.view), s, out=y)
        if self.bias_term:
            y += self.blobs[-1].data.reshape(1, self.view[1], 1)

    def channel_blobs(self) -> tuple[Blob, Blob | None] | None:
        """The parameter blobs ``(a, b)``, each ``(C,)`` (``b`` None without ``bias_term``),
        when forward is ``y = x·a + b`` per channel (axis 1); None when the factor is a
        second bottom or not one value per channel. What ``brewnet.net.fusion`` folds into
        a BatchNorm with batch statistics before it."""
        if len(self.param.bottom) > 1 or self.axis != 1 or self.blobs[0].data.ndim != 1:
            return None
        return self.blobs[0], self.blobs[1] if self.bias_term else None

    def channel_affine(self) -> tuple[Any, Any] | None:
        """``(a, b)`` of :meth:`channel_blobs`, their values as they are now (``b`` zeros
        without a bias), or None. What ``brewnet.net.fusion`` folds into a preceding
        convolution."""
        blobs = self.channel_blobs()
        if blobs is None:
            return None
        a, b = blobs
        return a.data, (b.data if b is not None else a.xp.zeros_like(a.data))

    def keep_input(self, x: Any) -> None:
        """Take ``x`` as the input of an in-place forward another layer ran for this one
        (a BatchNorm that folded it into its pass, ``brewnet.net.fusion``), for backward to
        read as it reads the input it keeps itself."""
        self._input = x

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        dy = top[0].diff.reshape(self.view)
        two = len(bottom) > 1
        x = self._input if top[0] is bottom[0] else bottom[0].data
        if kernels.enabled(xp):
            self._backward_kernel(dy, x, propagate_down, bottom)
            return
        if self.bias_term and self.param_propagate_down[-1]:
            self.blobs[-1].diff += self._sum_to_operand(dy, self.blobs[-1].diff.shape)
        if (propagate_down[1] if two else self.param_propagate_down[0]):
            # Σ dy·x over outer and inner without a product array.
            grad = xp.einsum("ijk,ijk->j", dy, x.reshape(self.view)).reshape(
                self._operand(bottom).data.shape)
            if two:
                bottom[1].diff[...] = grad
            else:
                self.blobs[0].diff += grad
        if propagate_down[0]:
            s = self._operand(bottom).data.reshape(1, self.view[1], 1)
            xp.multiply(dy, s, out=bottom[0].diff.reshape(self.view))

    def _backward_kernel(self, dy: Any, x: Any, propagate_down: list[bool],
                         bottom: list[Blob]) -> None:
        """The three gradients in two passes (the sums, then the bottom's)."""
        from ..kernels.batch_norm import scale_backward

        skip = kernels.SKIP
        operand = self._operand(bottom)
        if len(bottom) > 1:
            scale_grad = bottom[1].diff.reshape(-1) if propagate_down[1] else skip
            scale_grad[...] = 0  # bottom[1]'s diff is assigned, not accumulated
        else:
            scale_grad = self.blobs[0].diff.reshape(-1) if self.param_propagate_down[0] else skip
        bias_grad = skip
        if self.bias_term and self.param_propagate_down[-1]:
            bias_grad = self.blobs[-1].diff.reshape(-1)
        dx = bottom[0].diff.reshape(self.view) if propagate_down[0] else skip.reshape(0, 0, 0)
        x = dy if scale_grad is skip else x.reshape(self.view)  # read only for s's gradient
        scale = operand.data.reshape(-1)
        cores.split(np, self.view[1], lambda a, b: scale_backward(dy, x, scale, scale_grad,
                                                                 bias_grad, dx, a, b))
