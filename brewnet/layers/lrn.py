"""Local response normalization (Caffe's ``LRNLayer``) over ``(N, C, H, W)``.

- ACROSS_CHANNELS: ``scale = k + (alpha / n) * sum of x^2 over the n channels centred on c``
  (zero beyond the ends), ``y = x * scale^-beta``. Caffe divides alpha by ``local_size``.
- WITHIN_CHANNEL: Caffe composes square -> AVE pool (kernel n, pad (n-1)/2, stride 1) ->
  power(1 + alpha * avg, -beta) -> product with x; ``k`` is unused. With stride 1 and that pad
  every window ends inside ``[-pad, in + pad)``, so Caffe's AVE divisor is always ``n * n``.

Window sums are a few shifted adds (one per window offset, never per channel or pixel); the
spatial box is separable, so WITHIN_CHANNEL sums rows then columns (2n passes, not n^2).
"""

from __future__ import annotations

import numpy as np

from .. import cores, kernels
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .registry import register

_P = caffe_pb2.LRNParameter

# The exponents beta whose scale^-beta is computed from square roots and a division, each
# correctly rounded (so the compiled kernel, ``brewnet.kernels.lrn``, gives the same bits):
# faster than ``power`` (1.2 ns a value, half of GoogLeNet's LRN) and vectorized in the
# kernel. Each maps to the kernel's code for its formula. Every BVLC model uses 0.75.
ROOT_POWERS = {0.75: 0, 0.5: 1, 1.0: 2}


def negative_power(xp, scale, beta: float, out, scratch) -> None:
    """``out = scale^-beta``: for the exponents of ``ROOT_POWERS`` by their formula
    (``scratch``, shaped as ``out``, holds a root), else by ``xp.power``."""
    one = np.float32(1)
    if beta == 0.75:  # 1 / (√s · √√s)
        xp.sqrt(scale, out=out)
        xp.sqrt(out, out=scratch)
        out *= scratch
        xp.divide(one, out, out=out)
    elif beta == 0.5:
        xp.sqrt(scale, out=out)
        xp.divide(one, out, out=out)
    elif beta == 1.0:
        xp.divide(one, scale, out=out)
    else:
        xp.power(scale, np.float32(-beta), out=out)


def window_sum(xp, a, axis: int, size: int, out):
    """``out[i] = sum(a[i - r : i + r + 1])`` along ``axis`` with zeros past the ends,
    ``r = (size - 1) // 2``; ``out`` must not alias ``a``."""
    radius = (size - 1) // 2
    length = a.shape[axis]

    def along(start: int, stop: int):
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    xp.copyto(out, a)
    for d in range(1, min(radius, length - 1) + 1):
        out[along(0, length - d)] += a[along(d, length)]  # the window's right part
        out[along(d, length)] += a[along(0, length - d)]  # and its left part
    return out


@register
class LRNLayer(Layer):
    """``y = x * scale^-beta`` with ``scale`` from a window of squares (module docstring)."""

    type = "LRN"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.lrn_param
        if p.local_size % 2 == 0:
            raise self.error(f"local_size must be odd, got {p.local_size}")
        if p.norm_region not in (_P.ACROSS_CHANNELS, _P.WITHIN_CHANNEL):
            raise self.error(f"unknown norm_region {p.norm_region}")
        self._size = int(p.local_size)
        self._across = p.norm_region == _P.ACROSS_CHANNELS
        self._alpha, self._beta, self._k = float(p.alpha), float(p.beta), float(p.k)
        # What multiplies the window sum of squares, and what is added to it.
        if self._across:
            self._coef, self._shift = self._alpha / self._size, self._k
        else:
            self._coef, self._shift = self._alpha / (self._size * self._size), 1.0
        self._buffers: tuple | None = None
        # A TEST forward through the kernel leaves scale and scale^-beta unstored; a backward
        # that follows anyway (pycaffe) computes them first.
        self._statistics_due = False

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].shape)
        if len(shape) != 4:
            raise self.shape_error(f"the bottom must have 4 axes (N, C, H, W); got shape {shape}")
        top[0].reshape(*shape)
        xp = bottom[0].xp
        if self._buffers is None or self._buffers[0].shape != shape or not isinstance(
                self._buffers[0], type(bottom[0].data)):
            # scale and scale^-beta (kept for backward), then scratch for the squares and the
            # window sums (a 2-d window sums in two passes, so it needs one more).
            count = 4 if self._across else 5
            self._buffers = tuple(xp.empty(shape, dtype=np.float32) for _ in range(count))

    def _window(self, xp, a, out, samples: slice):
        """The window sum of ``a`` into ``out`` (both the batch's ``samples``)."""
        if self._across:
            return window_sum(xp, a, 1, self._size, out)
        rows = self._buffers[4][samples]
        window_sum(xp, a, 2, self._size, rows)
        return window_sum(xp, rows, 3, self._size, out)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x, y = bottom[0].data, top[0].data
        if self._across and self._beta in ROOT_POWERS and kernels.enabled(xp):
            self._forward_kernel(x, y)
            return
        self._statistics_due = False
        cores.split(xp, x.shape[0], lambda a, b: self._forward_samples(xp, x, y, slice(a, b)))

    def _forward_kernel(self, x, y) -> None:
        """The compiled forward (``brewnet.kernels.lrn``), the samples split over the cores."""
        from ..kernels.lrn import across_forward_kernel  # imports numba: only when used
        n, c = x.shape[:2]
        keep = self.phase != caffe_pb2.TEST
        run = across_forward_kernel(self._size, ROOT_POWERS[self._beta], keep)
        scale, powered = ((b.reshape(-1) for b in self._buffers[:2]) if keep
                          else (kernels.SKIP, kernels.SKIP))
        coef, shift = np.float32(self._coef), np.float32(self._shift)
        x, y = x.reshape(n, c, -1), y.reshape(n, c, -1)
        cores.split(np, n, lambda a, b: run(x, y, coef, shift, scale, powered, a, b))
        self._statistics_due = not keep

    def _forward_samples(self, xp, x, y, samples: slice) -> None:
        """Forward for the batch's ``samples`` (each core takes its own)."""
        self._statistics(xp, x, samples)
        xp.multiply(x[samples], self._buffers[1][samples], out=y[samples])

    def _statistics(self, xp, x, samples: slice) -> None:
        """``scale`` and ``scale^-beta`` of the batch's ``samples`` into their buffers."""
        x = x[samples]
        scale, powered, squares = (b[samples] for b in self._buffers[:3])
        xp.multiply(x, x, out=squares)
        self._window(xp, squares, scale, samples)
        scale *= np.float32(self._coef)
        scale += np.float32(self._shift)
        negative_power(xp, scale, self._beta, powered, squares)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """Caffe's formula: ``dx = dy * scale^-beta
        - 2 * alpha' * beta * x * window_sum(dy * y / scale)``, with ``alpha'`` the coefficient
        of the window sum in ``scale`` (the window is symmetric, so the windows that contain a
        cell are the window centred on it)."""
        if not propagate_down or not propagate_down[0]:
            return
        xp = bottom[0].xp
        if self._statistics_due:
            cores.split(xp, bottom[0].shape[0], lambda a, b: self._statistics(
                xp, bottom[0].data, slice(a, b)))
            self._statistics_due = False
        cores.split(xp, bottom[0].shape[0], lambda a, b: self._backward_samples(
            xp, bottom[0], top[0], slice(a, b)))

    def _backward_samples(self, xp, bottom: Blob, top: Blob, samples: slice) -> None:
        """Backward for the batch's ``samples`` (each core takes its own)."""
        x, dx = bottom.data[samples], bottom.diff[samples]
        y, dy = top.data[samples], top.diff[samples]
        scale, powered, ratio, summed = (b[samples] for b in self._buffers[:4])
        xp.multiply(dy, y, out=ratio)
        ratio /= scale
        self._window(xp, ratio, summed, samples)
        summed *= x
        summed *= np.float32(-2.0 * self._coef * self._beta)
        xp.multiply(dy, powered, out=dx)
        dx += summed
