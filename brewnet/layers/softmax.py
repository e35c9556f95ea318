"""Softmax along one axis, and the (outer, channels, inner) view that every axis-taking layer
(Softmax, SoftmaxWithLoss, Accuracy) works in."""

from __future__ import annotations

from typing import Any

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis, count


def split_axis(layer: Layer, shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """``(outer, channels, inner)`` for ``shape`` around ``axis``: a blob of that shape is
    viewed as an (outer, channels, inner) array and reduced over its middle axis."""
    a = canonical_axis(layer, axis, len(shape))
    return count(shape, 0, a), shape[a], count(shape, a + 1)


def softmax_into(x: Any, out: Any, xp: Any) -> None:
    """out = softmax of ``x`` over axis 1, both (outer, C, inner); ``out`` may be ``x``.

    The per-position maximum is subtracted first so exp never overflows.
    """
    peak = x.max(axis=1, keepdims=True)
    xp.subtract(x, peak, out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


@register
class Softmax(Layer):
    """y = exp(x) / Σ_axis exp(x) along ``softmax_param.axis`` (default 1, the channels)."""

    type = "Softmax"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        self._dims = split_axis(self, shape, self.param.softmax_param.axis)
        if top[0] is not bottom[0]:
            top[0].reshape(shape)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        softmax_into(bottom[0].data.reshape(self._dims), top[0].data.reshape(self._dims),
                     bottom[0].xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """dx = (dy - Σ_axis dy·y) · y."""
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        y = top[0].data.reshape(self._dims)
        dy = top[0].diff.reshape(self._dims)
        dx = bottom[0].diff.reshape(self._dims)
        dot = xp.einsum("ocn,ocn->on", dy, y)[:, None, :]
        xp.subtract(dy, dot, out=dx)
        dx *= y
