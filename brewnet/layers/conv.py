"""Convolution (Caffe's ``ConvolutionLayer``): im2col over the whole batch, then one GEMM per
group.

Shapes: bottom ``(N, C, H, W)`` (more leading axes before ``axis`` fold into N; one spatial axis
is allowed too), weight ``(M, C/group, kh, kw)``, bias ``(M,)``, top ``(N, M, OH, OW)`` with
``OH = (H + 2*pad_h - (dilation_h*(kh - 1) + 1)) // stride_h + 1``.

Layout: the bottom is copied once into a zero-padded buffer with channels first and the batch
either second ``(C, N, Hp, Wp)`` or last ``(C, Hp, Wp, N)``. The column matrix ``(C*kh*kw,
positions)`` is then filled by one strided copy per kernel offset, so no Python loop runs over
samples, channels or pixels. Batch-last is chosen when output rows are short or strided: it turns
every copy of im2col/col2im into long contiguous runs, at the price of transposing the top.
"""

from __future__ import annotations

import math

import numpy as np

from ..blob import Blob
from ..errors import NetError
from ..proto import caffe_pb2
from .base import Layer, learnable_shape_check
from .fillers import fill
from .registry import register

# Output rows shorter than this make batch-first im2col copies slow; see the module docstring.
_SHORT_ROW = 16
# Below this many output rows a GEMM is too thin to pay for splitting it by kernel row.
_MIN_GEMM_ROWS = 32


def _spatial_values(layer: Layer, p: caffe_pb2.ConvolutionParameter, name: str,
                    num_spatial: int, default: int | None) -> list[int]:
    """Caffe's rule for kernel/stride/pad: ``name_h``/``name_w`` (2-d only) or the repeated
    field given once (all axes) or once per spatial axis."""
    values = [int(v) for v in getattr(p, name if name != "kernel" else "kernel_size")]
    field = "kernel_size" if name == "kernel" else name
    h_name, w_name = f"{name}_h", f"{name}_w"
    if h_name in p.DESCRIPTOR.fields_by_name and (p.HasField(h_name) or p.HasField(w_name)):
        if num_spatial != 2:
            raise layer.error(f"{h_name}/{w_name} can only be used for 2-d convolution; this "
                              f"bottom has {num_spatial} spatial axis; use {field}")
        if values:
            raise layer.error(f"give either {field} or {h_name}/{w_name}, not both")
        return [int(getattr(p, h_name)), int(getattr(p, w_name))]
    if not values:
        if default is None:
            raise layer.error(f"{field} is required (once, or once per spatial axis)")
        return [default] * num_spatial
    if len(values) == 1:
        return values * num_spatial
    if len(values) != num_spatial:
        raise layer.error(f"{field} must be given once or once per spatial axis "
                          f"({num_spatial}); got {len(values)} values")
    return values


@register
class ConvolutionLayer(Layer):
    """``top = W * bottom + b`` per group, Caffe's cross-correlation (kernels are not flipped).

    Several bottoms may be given; each gets its own top and they share the weights.
    """

    type = "Convolution"
    min_bottom = 1
    min_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        if len(bottom) != len(top):
            raise self.error(f"needs one top per bottom; got {len(bottom)} bottoms and "
                             f"{len(top)} tops")
        p = self.param.convolution_param
        ndim = bottom[0].data.ndim
        if not -ndim <= p.axis < ndim:
            raise self.error(f"axis {p.axis} is out of range for a {ndim}-d bottom")
        self._axis = p.axis % ndim
        nsp = ndim - self._axis - 1
        if nsp not in (1, 2):
            raise self.shape_error(f"only 1-d and 2-d convolution are supported; bottom shape "
                                   f"{tuple(bottom[0].shape)} has {nsp} spatial axes after "
                                   f"axis {self._axis}")
        self._num_spatial = nsp
        kernel = _spatial_values(self, p, "kernel", nsp, None)
        stride = _spatial_values(self, p, "stride", nsp, 1)
        pad = _spatial_values(self, p, "pad", nsp, 0)
        dilation = _spatial_values(self, p, "dilation", nsp, 1)
        for name, values in (("kernel size", kernel), ("stride", stride),
                             ("dilation", dilation)):
            if min(values) <= 0:
                raise self.error(f"{name} must be positive, got {values}")
        if nsp == 1:  # a 1-d convolution is a 2-d one over a height of 1
            kernel, stride, pad, dilation = [1, *kernel], [1, *stride], [0, *pad], [1, *dilation]
        self._kernel, self._stride = tuple(kernel), tuple(stride)
        self._pad, self._dilation = tuple(pad), tuple(dilation)

        channels = int(bottom[0].shape[self._axis])
        num_output, group = int(p.num_output), int(p.group)
        if num_output <= 0:
            raise self.error("num_output must be positive")
        if group <= 0 or channels % group:
            raise self.error(f"the bottom's {channels} channels are not divisible by "
                             f"group {group}")
        if num_output % group:
            raise self.error(f"num_output {num_output} is not divisible by group {group}")
        self._channels, self._num_output, self._group = channels, num_output, group
        self._bias_term = bool(p.bias_term)

        weight_shape = (num_output, channels // group, *kernel[2 - nsp:])
        shapes = [weight_shape] + ([(num_output,)] if self._bias_term else [])
        if self.blobs:
            if len(self.blobs) != len(shapes):
                what = "weights and bias" if self._bias_term else "weights only"
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs "
                                       f"{len(shapes)} ({what})")
            for index, shape in enumerate(shapes):
                learnable_shape_check(self, index, shape)
        else:
            xp = bottom[0].xp
            fillers = (p.weight_filler, p.bias_filler)
            for shape, filler, what in zip(shapes, fillers, ("weight_filler", "bias_filler"),
                                           strict=False):
                blob = Blob(shape, xp=xp)
                try:
                    blob.data[...] = fill(filler, shape, xp)
                except NetError as e:
                    raise self.error(f"{what}: {e}") from e
                self.blobs.append(blob)
        self._geometry: tuple | None = None

    # -- shapes and scratch buffers ----------------------------------------------------------
    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].shape)
        for i, b in enumerate(bottom[1:], start=1):
            if tuple(b.shape) != shape:
                raise self.shape_error(f"all bottoms must have one shape; bottom[0] is {shape} "
                                       f"but bottom[{i}] is {tuple(b.shape)}")
        if len(shape) != self._axis + 1 + self._num_spatial:
            raise self.shape_error(f"bottom shape {shape} changed its number of axes since "
                                   f"setup")
        if shape[self._axis] != self._channels:
            raise self.shape_error(f"bottom has {shape[self._axis]} channels but the weights "
                                   f"expect {self._channels}")
        n = math.prod(shape[:self._axis])
        h, w = (1, shape[-1]) if self._num_spatial == 1 else shape[-2:]
        (kh, kw), (sh, sw) = self._kernel, self._stride
        (ph, pw), (dh, dw) = self._pad, self._dilation
        oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
        ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
        if oh <= 0 or ow <= 0:
            raise self.shape_error(f"the dilated kernel {kh}x{kw} (dilation {dh}x{dw}) is larger "
                                   f"than the padded input {h + 2 * ph}x{w + 2 * pw}")
        spatial_out = [ow] if self._num_spatial == 1 else [oh, ow]
        for t in top:
            t.reshape(list(shape[:self._axis]) + [self._num_output] + spatial_out)
        geometry = (n, h, w, oh, ow, bottom[0].xp)
        if geometry != self._geometry:
            self._allocate(*geometry)

    def _allocate(self, n: int, h: int, w: int, oh: int, ow: int, xp) -> None:
        """Scratch buffers for one input geometry; the padded border of ``_xpad`` stays 0."""
        self._geometry = (n, h, w, oh, ow, xp)
        self._n, self._h, self._w, self._oh, self._ow = n, h, w, oh, ow
        c, m = self._channels, self._num_output
        (kh, kw), (ph, pw) = self._kernel, self._pad
        hp, wp = h + 2 * ph, w + 2 * pw
        batch_last = n > 1 and (self._stride[1] > 1 or ow < _SHORT_ROW)
        if batch_last:  # internal (C, H, W, N)
            self._perm, self._hw_axes = (1, 2, 3, 0), (1, 2)
            pad_shape, window = (c, hp, wp, n), (oh, ow, n)
        else:  # internal (C, N, H, W)
            self._perm, self._hw_axes = (1, 0, 2, 3), (2, 3)
            pad_shape, window = (c, n, hp, wp), (n, oh, ow)
        self._inverse = tuple(int(a) for a in np.argsort(self._perm))
        self._window = window
        self._positions = math.prod(window)
        self._xpad = xp.zeros(pad_shape, dtype=np.float32)
        self._dxpad = None  # allocated by the first backward
        self._interior = self._index(slice(ph, ph + h), slice(pw, pw + w))
        self._col = xp.empty((c, kh, kw, *window), dtype=np.float32)
        self._out = xp.empty((m, *window), dtype=np.float32)
        self._dyt = xp.empty_like(self._out)
        self._ones = xp.ones(self._positions, dtype=np.float32)
        self._col_source: int | None = None  # which bottom _col currently holds
        # Kernel rows per GEMM of the bottom gradient: one row when that still gives the GEMM
        # enough output rows (C/G * kw), else the whole kernel at once.
        per_row = self._channels // self._group * kw
        self._rows = 1 if per_row >= _MIN_GEMM_ROWS else kh

    def _index(self, rows: slice, cols: slice) -> tuple[slice, ...]:
        index = [slice(None)] * 4
        index[self._hw_axes[0]], index[self._hw_axes[1]] = rows, cols
        return tuple(index)

    def _offsets(self):
        """For each kernel offset (i, j), the index of its strided window in the padded
        buffer."""
        (kh, kw), (sh, sw), (dh, dw) = self._kernel, self._stride, self._dilation
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (self._oh - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (self._ow - 1) + 1, sw)
                yield i, j, self._index(rows, cols)

    def _as_nchw(self, a):
        return a.reshape(self._n, -1, self._h, self._w)

    def _im2col(self, xp, x, source: int) -> None:
        xp.copyto(self._xpad[self._interior], self._as_nchw(x).transpose(self._perm))
        for i, j, window in self._offsets():
            xp.copyto(self._col[:, i, j], self._xpad[window])
        self._col_source = source

    # -- forward / backward --------------------------------------------------------------------
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        g, m = self._group, self._num_output
        weight = self.blobs[0].data.reshape(g, m // g, -1)
        col = self._col.reshape(g, -1, self._positions)
        out = self._out.reshape(g, m // g, self._positions)
        for index, (b, t) in enumerate(zip(bottom, top, strict=True)):
            self._im2col(xp, b.data, index)
            xp.matmul(weight, col, out=out)
            result = self._out.transpose(self._inverse)
            top4 = t.data.reshape(self._n, m, self._oh, self._ow)
            if self._bias_term:
                xp.add(result, self.blobs[1].data.reshape(1, m, 1, 1), out=top4)
            else:
                xp.copyto(top4, result)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        g, m = self._group, self._num_output
        want = list(self.param_propagate_down) + [True] * (len(self.blobs)
                                                           - len(self.param_propagate_down))
        weight_grad = want[0]
        bias_grad = self._bias_term and want[1]
        dyt = self._dyt
        dyt_g = dyt.reshape(g, m // g, self._positions)
        col = self._col.reshape(g, -1, self._positions)
        weight_rows = None
        for index, (b, t) in enumerate(zip(bottom, top, strict=True)):
            down = index < len(propagate_down) and propagate_down[index]
            if not (weight_grad or bias_grad or down):
                continue
            xp.copyto(dyt, t.diff.reshape(self._n, m, self._oh, self._ow)
                      .transpose(self._perm))
            if bias_grad:
                self.blobs[1].diff[...] += xp.matmul(dyt.reshape(m, -1), self._ones)
            if weight_grad:
                if self._col_source != index:
                    self._im2col(xp, b.data, index)
                # dW^T = col @ dy^T is the faster orientation for these shapes.
                grad = xp.matmul(col, dyt_g.transpose(0, 2, 1))
                wdiff = self.blobs[0].diff.reshape(g, m // g, -1)
                wdiff += grad.transpose(0, 2, 1)
            if down:
                if weight_rows is None:
                    weight_rows = self._weight_rows(xp)
                self._backward_data(xp, weight_rows, dyt_g, b.diff)

    def _weight_rows(self, xp):
        """W^T split into ``rows`` blocks of kernel rows: ``(blocks, G, C/G * rows * kw, M/G)``,
        contiguous for the GEMMs."""
        g, m = self._group, self._num_output
        kh, kw = self._kernel
        w = self.blobs[0].data.reshape(g, m // g, self._channels // g, kh, kw)
        blocks = kh // self._rows
        w = w.reshape(g, m // g, self._channels // g, blocks, self._rows, kw)
        stacked = w.transpose(3, 0, 2, 4, 5, 1)  # (blocks, G, C/G, rows, kw, M/G)
        return xp.ascontiguousarray(stacked).reshape(blocks, g, -1, m // g)

    def _backward_data(self, xp, weight_rows, dyt_g, dx) -> None:
        """Column gradient a block of kernel rows at a time (a GEMM, then strided adds), so
        the scratch stays small and hot in cache and ``_col`` keeps the forward's columns."""
        kh, kw = self._kernel
        if self._dxpad is None:
            self._dxpad = xp.empty_like(self._xpad)
            self._drow = xp.empty((self._channels, self._rows, kw, *self._window),
                                  dtype=np.float32)
        dxpad, drow = self._dxpad, self._drow
        drow_g = drow.reshape(self._group, -1, self._positions)
        dxpad.fill(0)
        offsets = list(self._offsets())
        for block in range(kh // self._rows):
            xp.matmul(weight_rows[block], dyt_g, out=drow_g)
            first = block * self._rows * kw
            for k, (_, _, window) in enumerate(offsets[first:first + self._rows * kw]):
                dxpad[window] += drow[:, k // kw, k % kw]
        xp.copyto(self._as_nchw(dx), dxpad[self._interior].transpose(self._inverse))
