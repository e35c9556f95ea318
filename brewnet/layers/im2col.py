"""Im2col (Caffe's ``Im2colLayer``): the patches a convolution would multiply, as a blob.

Shapes: bottom ``(N, C, H, W)`` (axes before ``axis`` are kept), top ``(N, C*kh*kw, OH, OW)``
with rows in Caffe's column order ``(c, i, j)`` and ``OH`` as for Convolution. The forward is
one strided copy from a (padded) view of the bottom; backward is col2im: one strided add per
kernel offset into a padded gradient, so overlapping patches sum.
"""

from __future__ import annotations

import math

import numpy as np

from ..blob import Blob
from .base import Layer
from .conv import _strided, output_extent, window_params
from .registry import register


@register
class Im2colLayer(Layer):
    """Top ``[n, (c*kh + i)*kw + j, y, x] = bottom[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw]``
    (0 in the padding)."""

    type = "Im2col"
    exact_num_bottom = 1
    exact_num_top = 1
    param_fields = ("convolution_param",)  # the kernel geometry of a convolution

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.convolution_param
        ndim = bottom[0].data.ndim
        if not -ndim <= p.axis < ndim:
            raise self.error(f"axis {p.axis} is out of range for a {ndim}-d bottom")
        self._axis = p.axis % ndim
        if ndim - self._axis - 1 != 2:
            raise self.shape_error(f"only 2-d im2col is supported; bottom shape "
                                   f"{tuple(bottom[0].shape)} has {ndim - self._axis - 1} "
                                   f"spatial axes after axis {self._axis}")
        self._kernel, self._stride, self._pad, self._dilation = map(
            tuple, window_params(self, p, 2))
        self._geometry: tuple | None = None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].shape)
        if len(shape) != self._axis + 3:
            raise self.shape_error(f"bottom shape {shape} changed its number of axes since "
                                   f"setup")
        c, h, w = shape[-3:]
        oh, ow = output_extent(self, h, w)
        (kh, kw), (ph, pw) = self._kernel, self._pad
        top[0].reshape(*shape[:self._axis], c * kh * kw, oh, ow)
        geometry = (math.prod(shape[:self._axis]), c, h, w, oh, ow, bottom[0].xp)
        if geometry != self._geometry:
            self._geometry = geometry
            n, xp = geometry[0], geometry[-1]
            padded = (n, c, h + 2 * ph, w + 2 * pw)
            # Padded scratch for the forward (borders stay 0) and for col2im.
            self._xpad = xp.zeros(padded, dtype=np.float32) if ph or pw else None
            self._dxpad = xp.empty(padded, dtype=np.float32)

    def _patches(self, xp, src):
        """``(N, C, kh, kw, OH, OW)`` view of a padded ``(N, C, Hp, Wp)`` array."""
        n, c, hp, wp = src.shape
        (kh, kw), (sh, sw), (dh, dw) = self._kernel, self._stride, self._dilation
        oh, ow = self._geometry[4:6]
        return _strided(xp, src, (n, c, kh, kw, oh, ow),
                        (c * hp * wp, hp * wp, dh * wp, dw, sh * wp, sw))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        n, c, h, w = self._geometry[:4]
        x = bottom[0].data.reshape(n, c, h, w)
        (ph, pw) = self._pad
        if self._xpad is not None:
            xp.copyto(self._xpad[:, :, ph:ph + h, pw:pw + w], x)
            x = self._xpad
        patches = self._patches(xp, xp.ascontiguousarray(x))
        xp.copyto(top[0].data.reshape(patches.shape), patches)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down or not propagate_down[0]:
            return
        xp = bottom[0].xp
        n, c, h, w, oh, ow = self._geometry[:6]
        (kh, kw), (sh, sw) = self._kernel, self._stride
        (ph, pw), (dh, dw) = self._pad, self._dilation
        dcol = top[0].diff.reshape(n, c, kh, kw, oh, ow)
        dxpad = self._dxpad
        dxpad.fill(0)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                dxpad[:, :, rows, cols] += dcol[:, :, i, j]
        xp.copyto(bottom[0].diff.reshape(n, c, h, w), dxpad[:, :, ph:ph + h, pw:pw + w])
