"""Convolution (Caffe's ``ConvolutionLayer``): im2col over the whole batch, then GEMMs.

Shapes: bottom ``(N, C, H, W)`` (more leading axes before ``axis`` fold into N; one spatial axis
is allowed too), weight ``(M, C/group, kh, kw)``, bias ``(M,)``, top ``(N, M, OH, OW)`` with
``OH = (H + 2*pad_h - (dilation_h*(kh - 1) + 1)) // stride_h + 1``.

im2col is one strided copy: the patches are an ``as_strided`` view of the (padded) bottom, so
no Python loop runs over samples, channels, pixels or even kernel offsets. Two layouts, picked
by which one gives the copies long contiguous runs:

- *patch rows* (many channels, e.g. LeNet's conv2): the bottom is copied channels-last
  ``(N, Hp, Wp, C)`` and each output position gets a row ``(kh, kw, C/G)``; a row of kernel taps
  is then ``kw * C/G`` contiguous floats. One GEMM ``(positions, K) @ (K, M)`` per group gives
  the top channels-last, which is transposed into ``(N, M, OH, OW)`` while adding the bias. The
  bottom gradient needs long runs in the other direction, so it is computed in a batch-last
  ``(C, Hp, Wp, N)`` layout (a GEMM per block of kernel rows, then strided adds).
- *per-sample columns* (few channels, e.g. conv1 on 1-channel images): columns
  ``(N, G, K, OH*OW)`` as Caffe's, and a batched GEMM writes the top in place: no transpose.
  With a bias the columns get one more row of ones and the weights a column holding the bias,
  so that GEMM adds the bias and the weight-gradient GEMM yields the bias gradient: no extra
  pass over the top.

Columns of the whole batch are kept from forward for the weight gradient while they fit
``_COL_BUDGET`` (LeNet's do: its arithmetic is unchanged). Larger ones (CIFAR-10's 82 MB, a
ResNet's 3x3 layers) are built a chunk of samples at a time, each chunk multiplied while it is
in cache, and rebuilt in backward. A stride-1 convolution whose output is no smaller than its
input ("same" padding) gets its bottom gradient as a convolution of the padded top gradient
with the flipped kernels, the forward's chunked GEMMs instead of col2im's scatter.

Two kinds skip im2col altogether (``_kind``):

- *depthwise* (``group == channels == num_output``): shifted multiply-adds over the whole batch
  (``depthwise.py``), where im2col's GEMMs would have an inner dimension of one;
- *pointwise* (1×1 kernel, no pad, one group): with stride 1 the bottom ``(N, C, H*W)``
  already is the column matrix, so each direction is one batched GEMM on the blobs themselves,
  no copies; with a stride (ResNet's projections) the column matrix is the bottom's strided
  pixels ``(N, C, OH*OW)``, one copy of a quarter of it instead of im2col's transposes.

Bias gradients that no GEMM yields are a matrix-vector product with ones (as Caffe's gemv),
several times faster than a reduction over two axes.

During a net's pass every step above runs per range of samples, one range per core
(``brewnet.cores``): copies, chunks, GEMMs (one-thread BLAS) and transposes of a range on its
own thread with its own scratch; weight gradients sum one partial gradient per range.
"""

from __future__ import annotations

import math

import numpy as np

from .. import batched, cores, kernels
from ..blob import Blob
from ..proto import caffe_pb2
from . import depthwise, epilogue, winograd
from .base import Layer
from .neuron import relu
from .registry import register
from .scratch import scratch

# Patch rows pay off once a row of kernel taps (kw * C/G floats) is at least this long; that
# also makes the bottom gradient's GEMM per kernel row thick enough.
_MIN_PATCH_RUN = 32
# Whole-batch columns up to this size are built once by forward and kept for the weight
# gradient (LeNet's are 8 MB). Larger ones are built a chunk of about _CHUNK_BYTES at a time,
# used while still in cache and rebuilt by backward: a GEMM on cache-resident columns runs
# 1.5x faster than one streaming an 80 MB column matrix, and nothing column-sized is kept.
# 4 MB rather than 2: with two BLAS threads the larger GEMMs split better (CIFAR-10 quick's
# iteration 92-94 -> 79 ms, CIFAR-10 full's 109-124 -> 93-99 ms; one thread unchanged).
_COL_BUDGET = 16 << 20
_CHUNK_BYTES = 4 << 20


def _strided(xp, a, shape, strides):
    """A read-only view of ``a`` with the given shape and element strides."""
    item = a.itemsize
    return xp.lib.stride_tricks.as_strided(a, shape=shape,
                                           strides=tuple(s * item for s in strides))


def _chunk_samples(n: int, sample_bytes: int, budget: int) -> int:
    """Samples per chunk of columns: the whole batch when its columns fit ``budget``, else as
    many as fit ``_CHUNK_BYTES`` (at least one)."""
    if n * sample_bytes <= budget:
        return n
    return max(1, min(n, _CHUNK_BYTES // sample_bytes))


def _rows_gemm(xp, cols, weight, top4, bias) -> None:
    """``top4`` (q, G, Mo, P) = the patch rows ``cols`` (G, q*P, K) times ``weight``
    (G, K, Mo) per group, transposed into place (+ ``bias``, shaped ``(1, G, Mo, 1)``)."""
    g, rows_count, _ = cols.shape
    q, _, mo, positions = top4.shape
    rows = scratch(xp, "conv.rows", (g, rows_count, mo))
    xp.matmul(cols, weight, out=rows)
    result = rows.reshape(g, q, positions, mo).transpose(1, 0, 3, 2)
    if bias is None:
        xp.copyto(top4, result)
    else:
        xp.add(result, bias, out=top4)


def _accumulate(xp, total, start: int, a, b, part) -> None:
    """``total = a @ b`` for the first chunk (``start == 0``), ``total += a @ b`` (by way of
    ``part``) for the others."""
    if start == 0:
        batched.product(xp, a, b, total)
    else:
        batched.product(xp, a, b, part)
        total += part


def _sum_parts(parts: list):
    """The sum of the ranges' partial gradients, into the first."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


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


def window_params(layer: Layer, p: caffe_pb2.ConvolutionParameter, num_spatial: int
                  ) -> tuple[list[int], list[int], list[int], list[int]]:
    """Kernel, stride, pad and dilation per spatial axis (Convolution and Im2col read the
    same ConvolutionParameter); kernel, stride and dilation must be positive."""
    kernel = _spatial_values(layer, p, "kernel", num_spatial, None)
    stride = _spatial_values(layer, p, "stride", num_spatial, 1)
    pad = _spatial_values(layer, p, "pad", num_spatial, 0)
    dilation = _spatial_values(layer, p, "dilation", num_spatial, 1)
    for name, values in (("kernel size", kernel), ("stride", stride), ("dilation", dilation)):
        if min(values) <= 0:
            raise layer.error(f"{name} must be positive, got {values}")
    return kernel, stride, pad, dilation


def output_extent(layer: Layer, h: int, w: int) -> tuple[int, int]:
    """A convolution window's output height and width over an h×w input, from the layer's
    ``_kernel``, ``_stride``, ``_pad`` and ``_dilation``; a shape error when the dilated
    kernel does not fit the padded input."""
    (kh, kw), (sh, sw) = layer._kernel, layer._stride
    (ph, pw), (dh, dw) = layer._pad, layer._dilation
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if oh <= 0 or ow <= 0:
        raise layer.shape_error(f"the dilated kernel {kh}x{kw} (dilation {dh}x{dw}) is larger "
                                f"than the padded input {h + 2 * ph}x{w + 2 * pw}")
    return oh, ow


@register
class ConvolutionLayer(Layer):
    """``top = W * bottom + b`` per group, Caffe's cross-correlation (kernels are not flipped).

    Several bottoms may be given; each gets its own top and they share the weights.
    """

    type = "Convolution"
    reshape_reads_blobs_only = True
    min_bottom = 1
    min_top = 1
    # Whether the depthwise and pointwise kinds may replace im2col; a transposed convolution,
    # which drives the im2col pieces itself, turns them off.
    direct_kinds = True

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
        kernel, stride, pad, dilation = window_params(self, p, nsp)
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
        self._group = group
        # The convolution's input and output channels (a transposed convolution swaps them).
        self._channels, self._num_output = self._conv_channels(channels, num_output)
        self._bias_term = bool(p.bias_term)

        weight_shape = (self._num_output, self._channels // group, *kernel[2 - nsp:])
        specs = [(weight_shape, p.weight_filler, "weight_filler")]
        if self._bias_term:
            specs.append(((num_output,), p.bias_filler, "bias_filler"))
        self.init_params(specs, bottom[0].xp)
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
        channels_in, channels_out = self._top_bottom_channels()[::-1]
        if shape[self._axis] != channels_in:
            raise self.shape_error(f"bottom has {shape[self._axis]} channels but the weights "
                                   f"expect {channels_in}")
        n = math.prod(shape[:self._axis])
        h, w = (1, shape[-1]) if self._num_spatial == 1 else shape[-2:]
        oh, ow = self._output_extent(h, w)
        spatial_out = [ow] if self._num_spatial == 1 else [oh, ow]
        for t in top:
            t.reshape(list(shape[:self._axis]) + [channels_out] + spatial_out)
        geometry = self._conv_geometry(n, h, w, oh, ow, bottom[0].xp)
        if geometry != self._geometry:
            self._allocate(*geometry)

    # The hooks a transposed convolution (Deconvolution) overrides: which channel count the
    # top and the bottom have, the output extent, and which side is the convolution's input.
    def _conv_channels(self, bottom_channels: int, num_output: int) -> tuple[int, int]:
        return bottom_channels, num_output

    def _top_bottom_channels(self) -> tuple[int, int]:
        return self._num_output, self._channels

    def _output_extent(self, h: int, w: int) -> tuple[int, int]:
        return output_extent(self, h, w)

    def _conv_geometry(self, n: int, h: int, w: int, oh: int, ow: int, xp) -> tuple:
        return n, h, w, oh, ow, xp

    def _allocate(self, n: int, h: int, w: int, oh: int, ow: int, xp) -> None:
        """Scratch buffers for one input geometry; padded borders stay 0."""
        self._geometry = (n, h, w, oh, ow, xp)
        self._n, self._h, self._w, self._oh, self._ow = n, h, w, oh, ow
        c, m, g = self._channels, self._num_output, self._group
        cg = c // g
        (kh, kw), (ph, pw) = self._kernel, self._pad
        (sh, sw), (dh, dw) = self._stride, self._dilation
        hp, wp = h + 2 * ph, w + 2 * pw
        self._kg = cg * kh * kw
        self._patch_rows = kw * cg >= _MIN_PATCH_RUN
        self._col_source: int | None = None  # which bottom _col (or _xpad) currently holds
        self._ones = xp.ones(oh * ow, dtype=np.float32)  # for bias gradients
        self._kind = "im2col"
        if self.direct_kinds and g == c == m:
            self._kind = "depthwise"
        elif self.direct_kinds and g == 1 and (kh, kw, ph, pw) == (1, 1, 0, 0):
            self._kind = "pointwise"
        self._folds_bias = self._bias_term and not self._patch_rows and self._kind == "im2col"
        if self._kind == "depthwise":
            padded = ph > 0 or pw > 0
            self._xpad = xp.zeros((n, c, hp, wp), dtype=np.float32) if padded else None
            self._interior = (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + w))
            return
        if self._kind == "pointwise":
            return
        rows_k = self._kg + self._folds_bias
        self._chunk = _chunk_samples(n, g * oh * ow * rows_k * 4, _COL_BUDGET)
        whole = self._chunk == n
        if self._patch_rows:
            self._xpad = xp.zeros((n, hp, wp, c), dtype=np.float32)
            self._interior = (slice(None), slice(ph, ph + h), slice(pw, pw + w))
            # (G, N, OH, OW, kh, kw, C/G) view of the channels-last padded bottom.
            self._patches = _strided(xp, self._xpad, (g, n, oh, ow, kh, kw, cg),
                                     (cg, hp * wp * c, sh * wp * c, sw * c, dh * wp * c,
                                      dw * c, 1))
            self._col = xp.empty((g, n * oh * ow, self._kg), dtype=np.float32) if whole else None
            # A stride-1 convolution whose output is at least its input's size has for bottom
            # gradient the convolution of the padded top gradient with the flipped kernels, as
            # many FLOPs as col2im and without its scatter (LeNet's unpadded conv2 has not).
            self._flipped_data_grad = ((sh, sw) == (1, 1) and oh >= h and ow >= w
                                       and ph <= dh * (kh - 1) and pw <= dw * (kw - 1)
                                       and kw * (m // g) >= _MIN_PATCH_RUN)
        else:
            padded = ph > 0 or pw > 0
            self._xpad = xp.zeros((n, c, hp, wp), dtype=np.float32) if padded else None
            self._interior = (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + w))
            # Columns (N, G, K (+1 row of ones with a bias), OH*OW); _col is the K-row view.
            self._col_ext = (xp.empty((n, g, rows_k, oh * ow), dtype=np.float32) if whole
                             else None)
            self._col = self._col_ext[:, :, :self._kg] if whole else None
            if self._folds_bias:
                if whole:
                    self._col_ext[:, :, self._kg] = 1
                self._weight_ext = xp.empty((g, m // g, self._kg + 1), dtype=np.float32)

    def _nchw(self, a):
        return a.reshape(self._n, self._channels, self._h, self._w)

    def _im2col(self, xp, x, source: int) -> None:
        """Make ``x`` the columns' source: copy it into the padded scratch and, when the
        whole batch's columns are kept, build them; chunked columns are built by
        ``_column_chunks`` where they are used."""
        self._point_patches(xp, x)
        cores.split(xp, self._n, lambda start, stop: self._fill(xp, x, start, stop))
        self._col_source = source

    def _point_patches(self, xp, x) -> None:
        """Per-sample columns: point ``_patches`` at what they read, the padded scratch or,
        without padding, ``x`` itself (patch rows always read their fixed scratch)."""
        if self._patch_rows:
            return
        src = self._nchw(x) if self._xpad is None else self._xpad
        _, c, hp, wp = src.shape
        (kh, kw), (sh, sw), (dh, dw) = self._kernel, self._stride, self._dilation
        g = self._group
        self._patches = _strided(xp, src, (self._n, g, c // g, kh, kw, self._oh, self._ow),
                                 (c * hp * wp, c // g * hp * wp, hp * wp, dh * wp, dw, sh * wp,
                                  sw))

    def _fill(self, xp, x, start: int, stop: int) -> None:
        """Copy samples ``start:stop`` of ``x`` into the padded scratch and build their kept
        whole-batch columns, if any."""
        x = self._nchw(x)[start:stop]
        if self._patch_rows:
            xp.copyto(self._xpad[start:stop][self._interior], x.transpose(0, 2, 3, 1))
            if self._col is not None:
                kh, kw = self._kernel
                ohw = self._oh * self._ow
                xp.copyto(self._col[:, start * ohw:stop * ohw].reshape(
                    self._group, stop - start, self._oh, self._ow, kh, kw, -1),
                    self._patches[:, start:stop])
            return
        if self._xpad is not None:
            xp.copyto(self._xpad[start:stop][self._interior], x)
        if self._col is not None:
            # _col may be a view with a ones row after each group's K rows: split, not merge.
            patches = self._patches[start:stop]
            xp.copyto(self._col[start:stop].reshape(patches.shape), patches)

    def _column_chunks(self, xp, with_ones: bool = False, start: int = 0,
                       stop: int | None = None):
        """``(first, last, columns)`` for each chunk of samples ``start:stop`` (all by default)
        of the source ``_im2col`` set: patch rows ``(G, q*OH*OW, K)``; per-sample columns
        ``(q, G, K, OH*OW)``, or with ``with_ones`` ``(q, G, K + 1, OH*OW)`` ending in a row of
        ones. The kept whole-batch columns are one chunk."""
        n, g, kg = self._n, self._group, self._kg
        stop = n if stop is None else stop
        ohw = self._oh * self._ow
        if self._chunk == n:
            if self._patch_rows:
                yield start, stop, self._col[:, start * ohw:stop * ohw]
            else:
                yield start, stop, (self._col_ext if with_ones else self._col)[start:stop]
            return
        for first in range(start, stop, self._chunk):
            last = min(stop, first + self._chunk)
            q = last - first
            if self._patch_rows:
                cols = scratch(xp, "conv.col", (g, q * ohw, kg))
                patches = self._patches[:, first:last]
                xp.copyto(cols.reshape(patches.shape), patches)
            else:
                cols = scratch(xp, "conv.col", (q, g, kg + with_ones, ohw))
                patches = self._patches[first:last]
                xp.copyto(cols[:, :, :kg].reshape(patches.shape), patches)
                if with_ones:
                    cols[:, :, kg] = 1
            yield first, last, cols

    # -- forward / backward --------------------------------------------------------------------
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        if self._winograd_forward(xp):  # the folded forward, with no epilogue
            self.forward_affine(bottom, top, None, None, None)
            return
        g, mg = self._group, self._num_output // self._group
        bias = self.blobs[1].data.reshape(1, g, mg, 1) if self._bias_term else None
        for index, (b, t) in enumerate(zip(bottom, top, strict=True)):
            if self._kind == "depthwise":
                depthwise.forward(xp, self._depthwise_source(xp, b.data, index, True),
                                  self.blobs[0].data.reshape(self._channels, *self._kernel),
                                  self._nchw_top(t.data), self._depthwise_scratch(xp),
                                  self._stride, self._dilation)
                if bias is not None:
                    t.data.reshape(self._n, g, mg, -1)[...] += bias
                continue
            if self._kind == "pointwise":
                self._pointwise_forward(xp, b.data, t.data.reshape(self._n, mg, -1), bias)
                continue
            self._point_patches(xp, b.data)
            self._apply_weights(xp, t.data, bias, fill=b.data)
            self._col_source = index

    def _pointwise_source(self, xp, x, start: int, stop: int):
        """The pointwise kind's column matrix ``(q, C, OH*OW)`` for samples ``start:stop``: the
        bottom itself at stride 1, else a copy of its strided pixels."""
        c = self._channels
        x = self._nchw(x)[start:stop]
        if self._stride == (1, 1):
            return x.reshape(stop - start, c, -1)
        sh, sw = self._stride
        sub = scratch(xp, "conv.sub", (stop - start, c, self._oh * self._ow))
        xp.copyto(sub.reshape(stop - start, c, self._oh, self._ow), x[:, :, ::sh, ::sw])
        return sub

    def _pointwise_forward(self, xp, x, out, bias, epilogue_args=None) -> None:
        """``out`` ``(N, M, OH*OW)`` = the weights times the pointwise columns of ``x`` (+
        ``bias`` ``(1, 1, M, 1)``; then ``epilogue.apply(*epilogue_args)`` when given), each
        range of samples one batched GEMM."""
        m = self._num_output
        weight = self.blobs[0].data.reshape(m, -1)

        def multiply(start: int, stop: int) -> None:
            part = out[start:stop]
            batched.product(xp, weight, self._pointwise_source(xp, x, start, stop), part)
            if bias is not None:
                part += bias.reshape(1, m, 1)
            if epilogue_args is not None:
                epilogue.apply(xp, part.reshape(stop - start, 1, m, -1), *epilogue_args)

        cores.split(xp, self._n, multiply)

    def epilogue_channels(self) -> int | None:
        """The top's channel count when the channels lie on axis 1, where BatchNorm and Scale
        read theirs, so an epilogue per channel can follow the GEMMs (``forward_affine``);
        else None."""
        return self._num_output if self._axis == 1 else None

    def takes_activation(self) -> bool:
        """Whether ``forward_activated`` runs an in-place ReLU after this layer in the pass
        that writes its top (``brewnet.net.fusion``, in every phase: the convolution's
        backward reads its bottom and the top's gradient, the ReLU's its output)."""
        return self.epilogue_channels() is not None

    def forward_activated(self, bottom: list[Blob], top: list[Blob], slope: np.float32
                          ) -> None:
        """``forward``, then the ReLU with negative ``slope`` in place on the top: as the
        epilogue of ``forward_affine`` with the compiled kernels, else the two forwards as
        written (NumPy's epilogue would add passes, not save one)."""
        xp = bottom[0].xp
        if kernels.enabled(xp):
            self.forward_affine(bottom, top, None, None, slope)
            return
        self.forward(bottom, top)
        for t in top:
            relu(xp, t.data, t.data, slope)

    def forward_affine(self, bottom: list[Blob], top: list[Blob], scale, shift,
                       slope: float | None) -> None:
        """Forward with an epilogue per channel: ``top = act((W * bottom + bias)·scale +
        shift)``, ``act`` a ReLU with negative ``slope`` (none when None), ``scale``/``shift``
        ``(M,)`` (None: 1 and 0). How a convolution runs the BatchNorm, Scale and ReLU that
        ``brewnet.net.fusion`` folded into it: in the pass that writes the top (depthwise,
        pointwise, and the 3x3 and 5x5 "same" stride-1 layers Winograd's transforms serve,
        ``winograd.py``), or on each chunk of output right after its GEMM (im2col; a patch-row
        layer at batch 1 through ``_forward_columns``, then over its top)."""
        xp = bottom[0].xp
        g, m, n = self._group, self._num_output, self._n
        mg, ohw = m // g, self._oh * self._ow
        a = xp.ones(m, dtype=np.float32) if scale is None else scale
        b = xp.zeros(m, dtype=np.float32) if shift is None else shift
        act = np.float32(1 if slope is None else slope)
        if self._winograd_forward(xp):
            self._col_source = None  # _col no longer matches any bottom
            if self._bias_term:
                b = self.blobs[1].data * a + b
            for x, t in zip(bottom, top, strict=True):
                winograd.forward_affine(xp, self._nchw(x.data), self.blobs[0].data, g,
                                        self._nchw_top(t.data), a, b, act)
            return
        if self._kind == "im2col" and not (self._patch_rows and n == 1):
            bias = self.blobs[1].data.reshape(1, g, mg, 1) if self._bias_term else None
            for index, (x, t) in enumerate(zip(bottom, top, strict=True)):
                self._point_patches(xp, x.data)
                self._apply_weights(xp, t.data, bias, fill=x.data,
                                    epilogue_args=(a.reshape(g, mg), b.reshape(g, mg), act))
                self._col_source = index
            return
        if self._bias_term:
            b = self.blobs[1].data * a + b
        weight = self.blobs[0].data
        for x, t in zip(bottom, top, strict=True):
            if self._kind == "depthwise":
                self._col_source = None  # _xpad is not (or not only) this bottom's copy
                depthwise.forward_affine(xp, self._nchw(x.data), self._xpad, self._pad,
                                         weight.reshape(self._channels, *self._kernel),
                                         self._nchw_top(t.data), self._depthwise_scratch(xp),
                                         self._stride, self._dilation, a, b, act)
                continue
            if self._kind == "im2col":
                self._col_source = None  # _col no longer matches any bottom
                top4 = t.data.reshape(n, g, mg, ohw)
                self._forward_columns(xp, x.data, top4)
                epilogue.apply(xp, top4, a.reshape(g, mg), b.reshape(g, mg), act)
                continue
            self._pointwise_forward(xp, x.data, t.data.reshape(n, m, ohw), None,
                                    (a.reshape(1, m), b.reshape(1, m), act))

    def _winograd_forward(self, xp) -> bool:
        """Whether forward runs by Winograd's transforms (``winograd.py``: 3x3 and 5x5
        "same" convolutions of stride 1, with the compiled kernels)."""
        return (self._kind == "im2col" and kernels.enabled(xp)
                and winograd.applies(self._n, self._h, self._w, self._channels // self._group,
                                     self._kernel, self._stride, self._pad, self._dilation))

    def _forward_columns(self, xp, x, out) -> None:
        """``out`` ``(N, G, M/G, OH*OW)`` = the weights times per-sample columns in the
        weights' own ``(C/G, kh, kw)`` order: neither a reordered copy of the weights nor a
        transpose of the output, which cost a patch-row layer more than its GEMM at batch
        1 (ResNet-50's 512x512x3x3 at 7x7: 3.1 against 5.3 ms)."""
        n, c, g, mg = self._n, self._channels, self._group, self._num_output // self._group
        (kh, kw), (ph, pw) = self._kernel, self._pad
        (sh, sw), (dh, dw) = self._stride, self._dilation
        hp, wp = self._h + 2 * ph, self._w + 2 * pw
        src = self._nchw(x)
        if ph or pw:
            padded = scratch(xp, "conv.xpad", (n, c, hp, wp))
            padded.fill(0)
            xp.copyto(padded[:, :, ph:ph + self._h, pw:pw + self._w], src)
            src = padded
        patches = _strided(xp, src, (n, g, c // g, kh, kw, self._oh, self._ow),
                           (c * hp * wp, c // g * hp * wp, hp * wp, dh * wp, dw, sh * wp, sw))
        cols = scratch(xp, "conv.col", (n, g, self._kg, self._oh * self._ow))
        xp.copyto(cols.reshape(patches.shape), patches)
        weight = self.blobs[0].data.reshape(g, mg, self._kg)
        if n == 1:  # the groups' products, a stack OpenBLAS's threads can share
            batched.matmul(xp, weight, cols.reshape(g, self._kg, -1), out.reshape(g, mg, -1))
        else:
            xp.matmul(weight, cols, out=out)

    def _depthwise_scratch(self, xp):
        """An output-shaped scratch array for the depthwise NumPy bodies."""
        return scratch(xp, "conv.depthwise", (self._n, self._channels, self._oh, self._ow))

    def _nchw_top(self, a):
        return a.reshape(self._n, self._num_output, self._oh, self._ow)

    def _depthwise_source(self, xp, x, source: int, fresh: bool):
        """The padded bottom the depthwise windows read: ``_xpad`` holding ``x`` (copied when
        ``fresh`` or when it holds another bottom), or ``x`` itself when there is no padding."""
        if self._xpad is None:
            return self._nchw(x)
        if fresh or self._col_source != source:
            xp.copyto(self._xpad[self._interior], self._nchw(x))
            self._col_source = source
        return self._xpad

    def _apply_weights(self, xp, out, bias, fill=None, epilogue_args=None) -> None:
        """``out`` (the convolution's output, any shape of that size) = weights x the columns
        in ``_col`` (+ ``bias``, shaped ``(1, G, M/G, 1)``, when given); with ``fill``, each
        range of samples first copies its part of that bottom (``_fill``); with
        ``epilogue_args``, each chunk of output then gets ``epilogue.apply`` while in cache."""
        g, m = self._group, self._num_output
        mg, ohw = m // g, self._oh * self._ow
        top4 = out.reshape(self._n, g, mg, ohw)
        folded = bias is not None and self._folds_bias
        if self._patch_rows:
            weight = self._weight_patch_rows()
        elif folded:
            weight = self._weight_ext
            weight[:, :, :self._kg] = self.blobs[0].data.reshape(g, mg, self._kg)
            weight[:, :, self._kg] = bias.reshape(g, mg)
        else:
            weight = self.blobs[0].data.reshape(g, mg, self._kg)

        def multiply(start: int, stop: int) -> None:
            if fill is not None:
                self._fill(xp, fill, start, stop)
            for first, last, cols in self._column_chunks(xp, folded, start, stop):
                if self._patch_rows:
                    _rows_gemm(xp, cols, weight, top4[first:last], bias)
                else:
                    if g == 1:  # a stack of the samples' products: brewnet's where they serve
                        batched.product(xp, weight[0], cols[:, 0], top4[first:last, 0])
                    else:
                        xp.matmul(weight, cols, out=top4[first:last])
                    if bias is not None and not folded:
                        top4[first:last] += bias
                if epilogue_args is not None:
                    epilogue.apply(xp, top4[first:last], *epilogue_args)

        cores.split(xp, self._n, multiply)

    def _weight_patch_rows(self):
        """The weights as ``(G, kh*kw*C/G, M/G)``, matching the patch rows: a transposed view
        of a ``(G, M/G, kh*kw*C/G)`` copy, which BLAS reads as it is. Building that copy
        moves taps before channels within each filter; the ``M/G``-last copy it replaces
        was a whole strided transpose (4.7 ms for 512x512x3x3 filters, more than their
        GEMM at batch 1)."""
        g, m = self._group, self._num_output
        w = self.blobs[0].data.reshape(g, m // g, self._channels // g, -1)
        rows = self.blobs[0].xp.ascontiguousarray(w.transpose(0, 1, 3, 2))
        return rows.reshape(g, m // g, self._kg).transpose(0, 2, 1)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        g, m = self._group, self._num_output
        mg, ohw = m // g, self._oh * self._ow
        want = self.param_propagate_down  # the net sets one entry per parameter blob
        weight_grad = want[0]
        bias_grad = self._bias_term and want[1]
        for index, (b, t) in enumerate(zip(bottom, top, strict=True)):
            down = index < len(propagate_down) and propagate_down[index]
            if not (weight_grad or bias_grad or down):
                continue
            dy = t.diff.reshape(self._n, g, mg, ohw)
            winograd_grad = weight_grad and self._winograd_forward(xp)
            fused = bias_grad and weight_grad and self._folds_bias and not winograd_grad
            if bias_grad and not fused:
                self.blobs[1].diff[...] += xp.matmul(dy, self._ones).sum(axis=0).reshape(m)
            if self._kind != "im2col":
                self._backward_direct(xp, b, t, index, weight_grad, down)
                continue
            if winograd_grad:
                winograd.weight_grad(xp, self._nchw(b.data), self._nchw_top(t.diff), g,
                                     self.blobs[0].diff)
            elif weight_grad:
                # Deliberate difference from Caffe (which redoes im2col here): reuse the forward's
                # columns (or padded copy); correct while the bottom is unchanged since forward
                # (the net ensures it). Unpadded chunked columns are views of b.data itself:
                # taken afresh (no copy), in case the blob's array was replaced.
                if self._col_source != index or (self._col is None and self._xpad is None):
                    self._im2col(xp, b.data, index)
                self._add_weight_grad(xp, dy, self.blobs[1].diff if fused else None)
            if down:
                self._backward_data(xp, t.diff, b.diff)

    def _backward_direct(self, xp, b: Blob, t: Blob, index: int, weight_grad: bool,
                         down: bool) -> None:
        """Weight and bottom gradients of the depthwise and pointwise kinds."""
        c, n = self._channels, self._n
        if self._kind == "depthwise":
            kernel, dy = (c, *self._kernel), self._nchw_top(t.diff)
            if weight_grad:
                depthwise.weight_grad(xp, dy, self._depthwise_source(xp, b.data, index, False),
                                      self.blobs[0].diff.reshape(kernel),
                                      self._depthwise_scratch(xp),
                                      self._stride, self._dilation)
            if down:
                if self._xpad is None:
                    dxpad = self._nchw(b.diff)
                else:
                    dxpad = scratch(xp, "conv.dxpad", self._xpad.shape)
                depthwise.backward_data(xp, dy, self.blobs[0].data.reshape(kernel), dxpad,
                                        self._depthwise_scratch(xp), self._stride,
                                        self._dilation)
                if self._xpad is not None:
                    xp.copyto(self._nchw(b.diff), dxpad[self._interior])
            return
        m = self._num_output
        dy = t.diff.reshape(n, m, -1)
        weight = self.blobs[0].data.reshape(m, c)
        if weight_grad:
            parts = cores.split(xp, n, lambda a, z: self._pointwise_weight_grad(xp, b.data, dy,
                                                                               a, z))
            wdiff = self.blobs[0].diff.reshape(m, c)
            wdiff += _sum_parts(parts)
        if not down:
            return
        dx = self._nchw(b.diff)

        def data_grad(start: int, stop: int) -> None:
            if self._stride == (1, 1):
                batched.product(xp, weight.T, dy[start:stop],
                                dx[start:stop].reshape(stop - start, c, -1))
                return
            # Only the strided pixels were used: the others' gradient is 0.
            sh, sw = self._stride
            dsub = scratch(xp, "conv.sub", (stop - start, c, self._oh * self._ow))
            batched.product(xp, weight.T, dy[start:stop], dsub)
            dx[start:stop].fill(0)
            xp.copyto(dx[start:stop, :, ::sh, ::sw],
                      dsub.reshape(stop - start, c, self._oh, self._ow))

        cores.split(xp, n, data_grad)

    def _pointwise_weight_grad(self, xp, x, dy, start: int, stop: int):
        """The pointwise weight gradient ``(M, C)`` over samples ``start:stop``: one GEMM per
        sample into a weight-sized buffer, not a batch-sized one."""
        m, c = self._num_output, self._channels
        cols = self._pointwise_source(xp, x, start, stop)
        grad = scratch(xp, "conv.wgrad", (m, c))
        one = scratch(xp, "conv.wpart", (m, c))
        for k in range(start, stop):
            if k == start:
                xp.matmul(dy[k], cols[0].T, out=grad)
            else:
                grad += xp.matmul(dy[k], cols[k - start].T, out=one)
        return grad

    def _backward_data(self, xp, dy, dx) -> None:
        """``dx`` (the convolution's input, overwritten) = the transposed convolution of
        ``dy`` (the convolution's output)."""
        g = self._group
        if (kernels.enabled(xp) and (self._oh, self._ow) == (self._h, self._w)
                and winograd.applies(self._n, self._oh, self._ow, self._num_output // g,
                                     self._kernel, self._stride, self._pad, self._dilation)):
            self._backward_data_winograd(xp, dy, dx)
        elif self._patch_rows and self._flipped_data_grad:
            self._backward_data_flipped(xp, dy, dx)
        elif self._patch_rows:
            self._backward_data_rows(xp, dy, dx)
        else:
            mg = self._num_output // g
            self._backward_data_columns(xp, dy.reshape(self._n, g, mg, -1), dx)

    def _backward_data_winograd(self, xp, top_diff, dx) -> None:
        """A "same" convolution of stride 1 (3x3 pad 1, 5x5 pad 2): ``dx`` is the forward
        convolution of the top gradient with each group's kernels flipped and their in/out
        channels swapped, by Winograd's transforms (``winograd.py``)."""
        g, m, c = self._group, self._num_output, self._channels
        mg, cg = m // g, c // g
        kh, kw = self._kernel
        flipped = self.blobs[0].data.reshape(g, mg, cg, kh, kw)[:, :, :, ::-1, ::-1]
        weight = scratch(xp, "conv.flipped", (g, cg, mg, kh, kw))
        xp.copyto(weight, flipped.transpose(0, 2, 1, 3, 4))
        weight = weight.reshape(c, mg, kh, kw)
        winograd.forward_affine(xp, self._nchw_top(top_diff), weight, g, self._nchw(dx),
                                xp.ones(c, dtype=np.float32), xp.zeros(c, dtype=np.float32),
                                np.float32(1))

    def _add_weight_grad(self, xp, dy, bias_diff=None) -> None:
        """Add the weight gradient for ``dy`` (N, G, M/G, OH*OW) and the columns in ``_col``;
        with ``bias_diff`` (per-sample columns with a ones row only), add the bias gradient
        there too, read off the same GEMM. Each range of samples sums its own part; the parts
        are added in order."""
        g, m = self._group, self._num_output
        mg = m // g
        kh, kw = self._kernel
        wdiff = self.blobs[0].diff.reshape(g, mg, -1, kh, kw)
        if self._patch_rows and self._col is not None:
            parts = cores.split(xp, self._n, lambda a, b: self._kept_rows_grad(xp, dy, a, b))
            total = _sum_parts(parts)
            wdiff += total.reshape(g, kh, kw, -1, mg).transpose(0, 4, 3, 1, 2)
        elif self._patch_rows:
            parts = cores.split(xp, self._n, lambda a, b: self._rows_grad(xp, dy, a, b))
            total = _sum_parts(parts)
            wdiff += total.reshape(g, mg, kh, kw, -1).transpose(0, 1, 4, 2, 3)
        else:
            with_ones = bias_diff is not None
            parts = cores.split(xp, self._n,
                                lambda a, b: self._columns_grad(xp, dy, with_ones, a, b))
            total = _sum_parts(parts)
            wdiff += total[:, :, :self._kg].reshape(wdiff.shape)
            if with_ones:
                bias_diff += total[:, :, self._kg].reshape(m)

    def _kept_rows_grad(self, xp, dy, start: int, stop: int):
        """The kept whole-batch patch rows' weight gradient over samples ``start:stop`` (LeNet's
        conv2): ``(K, q*P) @ (q*P, M/G)`` per group."""
        g, mg, ohw = self._group, self._num_output // self._group, self._oh * self._ow
        grad = scratch(xp, "conv.wgrad", (g, self._kg, mg))
        dy_rows = scratch(xp, "conv.rows", (g, (stop - start) * ohw, mg))
        xp.copyto(dy_rows.reshape(g, stop - start, ohw, mg),
                  dy[start:stop].transpose(1, 0, 3, 2))
        cols = self._col[:, start * ohw:stop * ohw]
        xp.matmul(cols.transpose(0, 2, 1), dy_rows, out=grad)
        return grad

    def _rows_grad(self, xp, dy, start: int, stop: int):
        """Chunked patch rows' weight gradient over samples ``start:stop``: ``(M/G, q*P) @
        (q*P, K)`` per group and chunk; the top diff needs only its samples moved next to each
        other (runs of OH*OW), no transpose into rows."""
        g, mg, ohw = self._group, self._num_output // self._group, self._oh * self._ow
        grad = scratch(xp, "conv.wgrad", (g, mg, self._kg))
        for first, last, cols in self._column_chunks(xp, False, start, stop):
            dy_t = scratch(xp, "conv.rows", (g, mg, last - first, ohw))
            xp.copyto(dy_t, dy[first:last].transpose(1, 2, 0, 3))
            _accumulate(xp, grad, first - start, dy_t.reshape(g, mg, -1), cols,
                        scratch(xp, "conv.wpart", grad.shape))
        return grad

    def _columns_grad(self, xp, dy, with_ones: bool, start: int, stop: int):
        """Per-sample columns' weight gradient (and with ``with_ones`` the bias gradient after
        it) over samples ``start:stop``: one small GEMM per sample, then a sum."""
        g, mg = self._group, self._num_output // self._group
        rows_k = self._kg + with_ones
        per_sample = scratch(xp, "conv.wsamples", (min(self._chunk, stop - start), g, mg,
                                                   rows_k))
        total = None
        for first, last, cols in self._column_chunks(xp, with_ones, start, stop):
            part = per_sample[:last - first]
            xp.matmul(dy[first:last], cols.transpose(0, 1, 3, 2), out=part)
            if total is None:
                total = part.sum(axis=0)
            else:
                total += part.sum(axis=0)
        return total

    def _offsets(self, index):
        """For each kernel offset (i, j), ``index(rows, cols)`` of its strided window."""
        (kh, kw), (sh, sw), (dh, dw) = self._kernel, self._stride, self._dilation
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (self._oh - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (self._ow - 1) + 1, sw)
                yield i, j, index(rows, cols)

    def _backward_data_flipped(self, xp, top_diff, dx) -> None:
        """Stride 1, output no smaller than the input: ``dx`` is the convolution of the top
        gradient, padded by ``dilation * (k - 1) - pad``, with each group's kernels flipped
        and their in/out channels swapped; run as the forward's patch-row GEMMs, chunk by
        chunk."""
        g, m, c = self._group, self._num_output, self._channels
        mg, cg = m // g, c // g
        kh, kw = self._kernel
        w5 = self.blobs[0].data.reshape(g, mg, cg, kh, kw)[:, :, :, ::-1, ::-1]
        weight = xp.ascontiguousarray(w5.transpose(0, 3, 4, 1, 2)).reshape(g, -1, cg)
        chunk = _chunk_samples(self._n, g * self._h * self._w * weight.shape[1] * 4,
                               _COL_BUDGET)
        top = top_diff.reshape(self._n, m, self._oh, self._ow)
        dx4 = dx.reshape(self._n, g, cg, self._h * self._w)
        cores.split(xp, self._n, lambda start, stop: self._flipped_range(
            xp, top[start:stop], weight, dx4[start:stop], chunk))

    def _flipped_range(self, xp, top, weight, dx4, chunk: int) -> None:
        """``_backward_data_flipped`` for the samples of ``top`` (q, M, OH, OW) into ``dx4``
        (q, G, C/G, H*W)."""
        g, m, n = self._group, self._num_output, top.shape[0]
        mg, h, w = m // g, self._h, self._w
        oh, ow = self._oh, self._ow
        (kh, kw), (dh, dw) = self._kernel, self._dilation
        qh, qw = dh * (kh - 1) - self._pad[0], dw * (kw - 1) - self._pad[1]
        hp, wp = oh + 2 * qh, ow + 2 * qw
        dypad = scratch(xp, "conv.dypad", (n, hp, wp, m))
        dypad[:, :qh].fill(0)
        dypad[:, qh + oh:].fill(0)
        dypad[:, qh:qh + oh, :qw].fill(0)
        dypad[:, qh:qh + oh, qw + ow:].fill(0)
        xp.copyto(dypad[:, qh:qh + oh, qw:qw + ow], top.transpose(0, 2, 3, 1))
        patches = _strided(xp, dypad, (g, n, h, w, kh, kw, mg),
                           (mg, hp * wp * m, wp * m, m, dh * wp * m, dw * m, 1))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            cols = scratch(xp, "conv.col", (g, (stop - start) * h * w, weight.shape[1]))
            xp.copyto(cols.reshape(g, stop - start, h, w, kh, kw, mg),
                      patches[:, start:stop])
            _rows_gemm(xp, cols, weight, dx4[start:stop], None)

    def _backward_data_columns(self, xp, dy, dx) -> None:
        """Per-sample column gradients by a batched GEMM, then one strided add per kernel
        offset into the padded bottom gradient, a chunk of samples at a time."""
        g, mg = self._group, self._num_output // self._group
        weight_t = self.blobs[0].data.reshape(g, mg, self._kg).transpose(0, 2, 1)
        dx = self._nchw(dx)
        cores.split(xp, self._n, lambda start, stop: self._columns_range(
            xp, dy[start:stop], weight_t, dx[start:stop]))

    def _columns_range(self, xp, dy, weight_t, dx) -> None:
        """``_backward_data_columns`` for the samples of ``dy`` (q, G, M/G, OH*OW) into ``dx``
        (q, C, H, W)."""
        kh, kw = self._kernel
        n = dy.shape[0]
        dxpad = scratch(xp, "conv.dxpad", (n, self._channels, self._h + 2 * self._pad[0],
                                           self._w + 2 * self._pad[1]))
        dxpad.fill(0)
        for start in range(0, n, self._chunk):
            stop = min(n, start + self._chunk)
            dcol = scratch(xp, "conv.dcol", (stop - start, self._group, self._kg,
                                             self._oh * self._ow))
            xp.matmul(weight_t, dy[start:stop], out=dcol)
            dcol = dcol.reshape(stop - start, self._channels, kh, kw, self._oh, self._ow)
            part = dxpad[start:stop]
            for i, j, window in self._offsets(lambda rows, cols: (Ellipsis, rows, cols)):
                part[window] += dcol[:, :, i, j]
        xp.copyto(dx, dxpad[self._interior])

    def _backward_data_rows(self, xp, top_diff, dx) -> None:
        """Column gradient in a batch-last ``(C, kh, kw, OH, OW, N)`` layout, one kernel row at
        a time (a GEMM with ``C/G * kw`` >= 32 output rows, then strided adds whose runs are
        ``OW * N`` long), so the scratch stays small and hot in cache and ``_col`` keeps the
        forward's patches."""
        g, m, c = self._group, self._num_output, self._channels
        kh, kw = self._kernel
        # W^T by kernel row: (kh, G, C/G * kw, M/G).
        w = self.blobs[0].data.reshape(g, m // g, c // g, kh, kw)
        w_rows = xp.ascontiguousarray(w.transpose(3, 0, 2, 4, 1)).reshape(kh, g, -1, m // g)
        top = top_diff.reshape(self._n, m, self._oh, self._ow)
        dx = self._nchw(dx)
        cores.split(xp, self._n, lambda start, stop: self._rows_range(
            xp, top[start:stop], w_rows, dx[start:stop]))

    def _rows_range(self, xp, top, w_rows, dx) -> None:
        """``_backward_data_rows`` for the samples of ``top`` (q, M, OH, OW) into ``dx``
        (q, C, H, W)."""
        g, m, c = self._group, self._num_output, self._channels
        (kh, kw), (ph, pw) = self._kernel, self._pad
        n, oh, ow = top.shape[0], self._oh, self._ow
        dxpad = scratch(xp, "conv.dxpad", (c, self._h + 2 * ph, self._w + 2 * pw, n))
        dyt = scratch(xp, "conv.rows", (m, oh, ow, n))
        drow = scratch(xp, "conv.dcol", (c, kw, oh, ow, n))
        xp.copyto(dyt, top.transpose(1, 2, 3, 0))
        dyt_g = dyt.reshape(g, m // g, -1)
        drow_g = drow.reshape(g, -1, oh * ow * n)
        dxpad.fill(0)
        offsets = list(self._offsets(lambda r, s: (slice(None), r, s)))
        add_row = None
        if kernels.enabled(xp):  # compiled: one pass per kernel row (brewnet.kernels.im2col)
            from ..kernels.im2col import add_kernel_row as add_row
        for i in range(kh):
            xp.matmul(w_rows[i], dyt_g, out=drow_g)
            if add_row is not None:
                add_row(drow, dxpad, i * self._dilation[0], *self._stride, self._dilation[1])
                continue
            for j, (_, _, window) in enumerate(offsets[i * kw:(i + 1) * kw]):
                dxpad[window] += drow[:, j]
        xp.copyto(dx, dxpad[:, ph:ph + self._h, pw:pw + self._w].transpose(3, 0, 1, 2))
