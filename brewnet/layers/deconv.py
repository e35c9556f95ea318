"""Deconvolution (Caffe's ``DeconvolutionLayer``): the transposed convolution, i.e. the
convolution's data gradient run forward.

Shapes: bottom ``(N, C, H, W)``, weight ``(C, M/group, kh, kw)`` (Caffe keeps the convolution's
blob layout with the roles of input and output swapped), bias ``(M,)``, top ``(N, M, OH, OW)``
with ``OH = stride_h * (H - 1) + dilation_h * (kh - 1) + 1 - 2 * pad_h``.

It is a :class:`~brewnet.layers.conv.ConvolutionLayer` seen from the other side: that class's
scratch geometry describes a convolution from this layer's top to its bottom, so forward is its
backward-data, backward-data is its forward, and the weight gradient is its weight gradient with
the columns taken from this layer's top diff.
"""

from __future__ import annotations

from ..blob import Blob
from .conv import ConvolutionLayer
from .registry import register


@register
class DeconvolutionLayer(ConvolutionLayer):
    """``top`` = each bottom pixel scattering ``value * W`` into a kernel-sized window of the
    top (step ``stride``, cropped by ``pad``), per group, plus a bias per top channel."""

    type = "Deconvolution"
    param_fields = ("convolution_param",)  # Caffe's Deconvolution shares Convolution's
    direct_kinds = False  # forward and backward drive the im2col pieces themselves

    def epilogue_channels(self) -> None:
        """None: this forward is not the convolution's, so it takes no fused epilogue."""
        return None

    def _conv_channels(self, bottom_channels: int, num_output: int) -> tuple[int, int]:
        return num_output, bottom_channels

    def _top_bottom_channels(self) -> tuple[int, int]:
        return self._channels, self._num_output

    def _output_extent(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw) = self._kernel, self._stride
        (ph, pw), (dh, dw) = self._pad, self._dilation
        oh = sh * (h - 1) + dh * (kh - 1) + 1 - 2 * ph
        ow = sw * (w - 1) + dw * (kw - 1) + 1 - 2 * pw
        if oh <= 0 or ow <= 0:
            raise self.shape_error(f"pad {ph}x{pw} crops the whole {oh + 2 * ph}x{ow + 2 * pw} "
                                   f"output of a {h}x{w} input; use a smaller pad")
        return oh, ow

    def _conv_geometry(self, n: int, h: int, w: int, oh: int, ow: int, xp) -> tuple:
        # The convolution runs from this layer's (large) top back to its bottom.
        return n, oh, ow, h, w, xp

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        for b, t in zip(bottom, top, strict=True):
            self._backward_data(xp, b.data, t.data)
            if self._bias_term:
                t.data.reshape(self._n, self._channels, -1)[...] += \
                    self.blobs[1].data.reshape(1, -1, 1)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        g = self._group
        want = self.param_propagate_down
        weight_grad = want[0]
        bias_grad = self._bias_term and want[1]
        for index, (b, t) in enumerate(zip(bottom, top, strict=True)):
            down = index < len(propagate_down) and propagate_down[index]
            if bias_grad:
                self.blobs[1].diff[...] += t.diff.reshape(self._n, self._channels, -1).sum(
                    axis=(0, 2), dtype=t.diff.dtype)
            if not (weight_grad or down):
                continue
            self._im2col(xp, t.diff, -1)  # the columns of the top diff serve both gradients
            if weight_grad:
                self._add_weight_grad(xp, b.data.reshape(self._n, g, self._num_output // g, -1))
            if down:
                self._apply_weights(xp, b.diff, None)
