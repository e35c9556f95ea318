"""Pooling (Caffe's ``PoolingLayer``): MAX and AVE over (N, C, H, W), with Caffe's sizes.

Output size: ``out = ceil((in + 2*pad - k) / stride) + 1`` (``round_mode: FLOOR`` floors), then
``out -= 1`` when the last window would start at or past ``in + pad``. Like Caffe, that last rule
is applied to both axes whenever either axis is padded, and to neither when none is.

- MAX windows are clipped to the image, so padding never wins; the first maximum in row-major
  window order is kept (Caffe compares with ``>``). An optional second top holds that argmax as
  a flat ``h * W + w`` index (as float), like Caffe's mask top.
- AVE sums real pixels only but divides by the window clipped to ``[-pad, in + pad)``, i.e.
  padding counts in the divisor as in Caffe.
- STOCHASTIC (Caffe's GPU kernels; inputs must be non-negative, e.g. after ReLU): in TRAIN each
  window yields one of its elements drawn with probability proportional to its value (the
  first one whose running sum reaches ``u * sum``, ``u`` uniform in [0, 1)), and backward
  routes to it; in TEST each window yields ``sum(x^2) / sum(x)`` (0 for an all-zero window).
  Caffe's stochastic kernels ignore ``pad``, so brewnet refuses it.

The windows are strided views of the bottom (or of a padded copy made once per forward); loops
run over the k*k kernel offsets only, never over pixels.
"""

from __future__ import annotations

import numpy as np

from .. import cores, kernels, rng
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .registry import register
from .scratch import scratch

_P = caffe_pb2.PoolingParameter
# Bytes of bottom planes processed together: about an L2 cache, so the k*k strided passes over
# a block hit cache instead of memory.
_BLOCK_BYTES = 1 << 19


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = True,
                any_pad: bool | None = None) -> int:
    """Caffe's pooled extent of one axis (see the module docstring); ``any_pad`` says whether
    either axis is padded (default: this axis's ``pad > 0``), which is what gates the rule."""
    if any_pad is None:
        any_pad = pad > 0
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if any_pad and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the image or its left padding
    return out


def _pair(layer: Layer, p: caffe_pb2.PoolingParameter, name: str, default: int) -> list[int]:
    """``name`` (``kernel_size`` for the kernel) or both ``name_h`` and ``name_w``, never both
    forms, as Caffe checks."""
    field = "kernel_size" if name == "kernel" else name
    has = p.HasField(field)
    has_h, has_w = p.HasField(f"{name}_h"), p.HasField(f"{name}_w")
    if has_h or has_w:
        if has:
            raise layer.error(f"give either {field} or {name}_h and {name}_w, not both")
        if not (has_h and has_w):
            raise layer.error(f"{name}_h and {name}_w must be given together")
        return [int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))]
    value = int(getattr(p, field)) if has else default
    return [value, value]


@register
class PoolingLayer(Layer):
    """MAX or AVE pooling; top ``(N, C, OH, OW)``, optional top[1] the MAX argmax mask."""

    type = "Pooling"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    min_top = 1
    max_top = 2

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.pooling_param
        if p.pool not in (_P.MAX, _P.AVE, _P.STOCHASTIC):
            raise self.error(f"unknown pool method {p.pool}")
        self._max = p.pool == _P.MAX
        self._stochastic = p.pool == _P.STOCHASTIC
        if len(top) > 1 and not self._max:
            raise self.error("only MAX pooling has a second (mask) top; remove the extra top")
        self._global = bool(p.global_pooling)
        kernel_given = p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField(
            "kernel_w")
        if self._global:
            if kernel_given:
                raise self.error("global_pooling takes the whole image as its kernel; remove "
                                 "kernel_size/kernel_h/kernel_w")
            kernel = [0, 0]  # set from the bottom in reshape
        else:
            if not kernel_given:
                raise self.error("kernel_size (or kernel_h and kernel_w) is required")
            kernel = _pair(self, p, "kernel", 0)
            if min(kernel) <= 0:
                raise self.error(f"kernel size must be positive, got {kernel}")
        stride = _pair(self, p, "stride", 1)
        pad = _pair(self, p, "pad", 0)
        if min(stride) <= 0:
            raise self.error(f"stride must be positive, got {stride}")
        if self._global and (pad != [0, 0] or stride != [1, 1]):
            raise self.error(f"global_pooling needs pad 0 and stride 1, got pad {pad} and "
                             f"stride {stride}")
        if not self._global and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
            raise self.error(f"pad {pad} must be smaller than the kernel {kernel}")
        if self._stochastic and pad != [0, 0]:
            raise self.error("STOCHASTIC pooling takes no pad (Caffe's stochastic kernels "
                             "ignore it); remove pad")
        self._kernel, self._stride, self._pad = kernel, stride, pad
        self._ceil = p.round_mode == _P.CEIL
        self._geometry: tuple | None = None

    # -- shapes and scratch buffers ----------------------------------------------------------
    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].shape)
        if len(shape) != 4:
            raise self.shape_error(f"the bottom must have 4 axes (N, C, H, W); got shape {shape}")
        n, c, h, w = shape
        if self._global:
            self._kernel = [h, w]
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._pad
        if self._global:
            oh = ow = 1
        else:
            padded = ph > 0 or pw > 0
            oh = pooled_size(h, kh, sh, ph, self._ceil, any_pad=padded)
            ow = pooled_size(w, kw, sw, pw, self._ceil, any_pad=padded)
        if oh <= 0 or ow <= 0:
            raise self.shape_error(f"kernel {kh}x{kw} does not fit the padded input "
                                   f"{h + 2 * ph}x{w + 2 * pw}")
        for t in top:
            t.reshape(n, c, oh, ow)
        geometry = (shape, oh, ow, bottom[0].xp)
        if geometry != self._geometry:
            self._allocate(*geometry)

    def _allocate(self, shape: tuple[int, ...], oh: int, ow: int, xp) -> None:
        self._geometry = (shape, oh, ow, xp)
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._pad
        self._shape, self._oh, self._ow = shape, oh, ow
        # The windows span [-pad, (out-1)*stride + k - pad) on each axis; when that is exactly
        # the image, they are views of the bottom itself and no padded copy is needed.
        span_h, span_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
        self._direct = ph == 0 and pw == 0 and span_h <= h and span_w <= w
        # Disjoint windows that tile the whole bottom.
        self._tiles = self._direct and (sh, sw) == (kh, kw) and (span_h, span_w) == (h, w)
        self._planes = planes = n * c
        if self._stochastic:
            self._allocate_stochastic(xp)
            return
        # NumPy arrays with numba present take the compiled window loops (brewnet.kernels),
        # which pad plane by plane themselves.
        self._fast = kernels.enabled(xp) and not self._global
        if self._direct or self._fast:
            self._buffer = None
            plane_bytes = h * w * 4
        else:
            self._buffer = xp.full((planes, span_h, span_w), -np.inf if self._max else 0,
                                   dtype=np.float32)
            rows, cols = min(h, span_h - ph), min(w, span_w - pw)
            self._inner = (slice(None), slice(ph, ph + rows), slice(pw, pw + cols))
            self._crop = (slice(None), slice(0, rows), slice(0, cols))
            plane_bytes = span_h * span_w * 4
        # Work on blocks of planes small enough to stay in cache across the k*k passes.
        self._step = max(1, _BLOCK_BYTES // plane_bytes)
        self._grad = None  # gradient scratch, made by the first backward
        self._argmax_due = False
        # Disjoint MAX windows are first copied apart, one contiguous plane per kernel offset:
        # the k*k passes then run on contiguous arrays (SIMD) instead of stride-k views.
        self._gather = (xp.empty((kh, kw, min(self._step, planes), oh, ow), dtype=np.float32)
                        if self._tiles and self._max and not self._fast else None)
        if self._max:
            # The argmax is the kernel offset i*kw + j; one byte holds it for kernels to 16x16.
            offsets = 1 if self._global else kh * kw
            small = offsets <= np.iinfo(np.uint8).max and not self._global
            self._argmax = xp.zeros((planes, oh, ow), dtype=np.uint8 if small else np.int32)
            if not self._global:  # the global path takes an argmax directly
                self._better = xp.empty((planes, oh, ow), dtype=bool)
                self._candidate = xp.empty_like(self._argmax)
        else:
            # Caffe's divisor: the window clipped to [-pad, in + pad), before clipping to the
            # image.
            start_h = np.arange(oh) * sh - ph
            start_w = np.arange(ow) * sw - pw
            size_h = np.minimum(start_h + kh, h + ph) - start_h
            size_w = np.minimum(start_w + kw, w + pw) - start_w
            self._divisor = xp.asarray(np.outer(size_h, size_w).astype(np.float32))

    def _allocate_stochastic(self, xp) -> None:
        """A zero-filled copy of the bottom large enough for every window (overhanging windows
        are clipped by zeros, which are never drawn), the draws, and scratch planes."""
        _, _, h, w = self._shape
        (kh, kw), (sh, sw) = self._kernel, self._stride
        oh, ow, planes = self._oh, self._ow, self._planes
        span_h, span_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
        self._sto_buffer = xp.zeros((planes, max(span_h, h), max(span_w, w)), dtype=np.float32)
        # Per kernel offset, which window cells lie inside the image.
        rows = (np.arange(oh) * sh)[None, :, None] + np.repeat(np.arange(kh), kw)[:, None, None]
        cols = (np.arange(ow) * sw)[None, None, :] + np.tile(np.arange(kw), kh)[:, None, None]
        self._sto_inside = xp.asarray((rows < h) & (cols < w))  # (K, OH, OW)
        self._sto_choice = xp.zeros((planes, oh, ow), dtype=np.int32)  # the drawn offset
        self._sto_scratch = [xp.empty((planes, oh, ow), dtype=np.float32) for _ in range(2)]
        self._sto_flags = [xp.empty((planes, oh, ow), dtype=bool) for _ in range(2)]
        self._step = max(1, _BLOCK_BYTES // (self._sto_buffer[0].size * 4))
        self._grad = None  # gradient scratch, made by the first backward

    def _forward_stochastic(self, xp, x, y) -> None:
        """One pass per kernel offset over strided views of the padded copy, a cache-sized
        block of planes at a time: no window array is materialized."""
        _, _, h, w = self._shape
        buf = self._sto_buffer
        xp.copyto(buf[:, :h, :w], x)
        train = self.phase == caffe_pb2.TRAIN
        u = rng.generator().random(y.shape, dtype=np.float32) if train else None
        for block in self._blocks():
            if train:
                self._draw_block(xp, buf[block], y[block], xp.asarray(u[block]), block)
            else:
                self._average_block(xp, buf[block], y[block], block)

    def _window_sum(self, source, total) -> None:
        total.fill(0)
        for _, window in self._windows(source):
            total += window

    def _average_block(self, xp, source, y, block: slice) -> None:
        """Caffe's TEST output sum(x^2) / (FLT_MIN + sum(x)): 0 for an all-zero window."""
        total, work = (a[block] for a in self._sto_scratch)
        self._window_sum(source, total)
        y.fill(0)
        for _, window in self._windows(source):
            xp.multiply(window, window, out=work)
            y += work
        total += np.finfo(np.float32).tiny
        y /= total

    def _draw_block(self, xp, source, y, u, block: slice) -> None:
        """Draw the first cell whose running sum reaches ``u * sum`` (u uniform in [0, 1))."""
        threshold, running = (a[block] for a in self._sto_scratch)
        done, take = (a[block] for a in self._sto_flags)
        choice = self._sto_choice[block]
        self._window_sum(source, threshold)
        threshold *= u
        running.fill(0)
        done.fill(False)
        choice.fill(0)
        for offset, window in self._windows(source):
            running += window
            xp.greater_equal(running, threshold, out=take)
            take &= ~done
            take &= self._sto_inside[offset]  # only cells in the image can be drawn
            if offset:
                xp.copyto(y, window, where=take)
            else:
                xp.copyto(y, window)  # the fallback when no cell qualifies (negative inputs)
            xp.copyto(choice, np.int32(offset), where=take)
            done |= take

    def _backward_stochastic(self, xp, dy, dx) -> None:
        """Each top diff goes to its drawn cell: one masked, strided add per kernel offset
        (overlapping windows that drew the same cell add up)."""
        if self.phase != caffe_pb2.TRAIN:
            raise self.error("STOCHASTIC pooling has a gradient only in the TRAIN phase (as in "
                             "Caffe); set propagate_down: false or use MAX/AVE",
                             field="propagate_down")
        _, _, h, w = self._shape
        if self._grad is None:
            self._grad = xp.empty_like(self._sto_buffer)
        routed = self._sto_scratch[0]
        hit = self._sto_flags[0]
        grad = self._grad
        grad.fill(0)
        for offset, window in self._windows(grad):
            xp.equal(self._sto_choice, offset, out=hit)
            xp.multiply(dy, hit, out=routed)
            window += routed
        xp.copyto(dx, grad[:, :h, :w])

    def _tile_view(self, a):
        """Planes ``(P, H, W)`` of disjoint windows as ``(kh, kw, P, OH, OW)``."""
        (kh, kw), oh, ow = self._kernel, self._oh, self._ow
        return a.reshape(-1, oh, kh, ow, kw).transpose(2, 4, 0, 1, 3)

    def _gather_tiles(self, xp, x):
        """The window elements of these planes, one contiguous array per kernel offset."""
        gathered = self._gather[:, :, :x.shape[0]]
        xp.copyto(gathered, self._tile_view(x))
        return gathered

    def _windows(self, source):
        """(offset number, strided view of the window elements at that kernel offset)."""
        (kh, kw), (sh, sw) = self._kernel, self._stride
        if source.ndim == 5:  # gathered tiles
            for i in range(kh):
                for j in range(kw):
                    yield i * kw + j, source[i, j]
            return
        oh, ow = self._oh, self._ow
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, source[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]

    def _blocks(self):
        for start in range(0, self._planes, self._step):
            yield slice(start, min(start + self._step, self._planes))

    def _planar(self, a):
        return a.reshape(self._planes, *a.shape[2:])

    # -- forward / backward --------------------------------------------------------------------
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x, y = self._planar(bottom[0].data), self._planar(top[0].data)
        if self._stochastic:
            self._forward_stochastic(xp, x, y)
        elif self._global:
            self._forward_global(xp, x, y)
        elif self._fast and self._max and len(top) == 1 and self.phase == caffe_pb2.TEST:
            # A TEST forward without a mask top takes MAX's values only; a backward that
            # follows anyway (pycaffe) finds the argmax first (``_argmax_due``).
            self._forward_kernel(x, y, values_only=True)
            self._argmax_due = True
        elif self._fast:
            self._forward_kernel(x, y)
            self._argmax_due = False
        else:
            for block in self._blocks():
                if self._gather is not None:
                    source = self._gather_tiles(xp, x[block])
                elif self._direct:
                    source = x[block]
                else:
                    source = self._buffer[block]
                    xp.copyto(source[self._inner], x[block][self._crop])
                self._forward_block(xp, source, y[block], block)
        if len(top) > 1:
            self._write_mask(xp, self._planar(top[1].data))

    def _forward_block(self, xp, source, y, block: slice) -> None:
        windows = self._windows(source)
        _, first = next(windows)
        xp.copyto(y, first)
        if self._max:
            argmax, better = self._argmax[block], self._better[block]
            candidate = self._candidate[block]
            argmax.fill(0)
            for offset, window in windows:
                xp.greater(window, y, out=better)  # strict: the first maximum stays
                xp.maximum(window, y, out=y)
                # Offsets only grow, so "take this offset where better" is a maximum; unlike
                # a masked copy it has no data-dependent branches.
                xp.multiply(better, argmax.dtype.type(offset), out=candidate)
                xp.maximum(argmax, candidate, out=argmax)
        else:
            for _, window in windows:
                y += window
            y /= self._divisor

    def _forward_kernel(self, x, y, values_only: bool = False) -> None:
        """The compiled window loops (brewnet.kernels.pooling) over the same frame, padded
        plane by plane, the planes split over the cores; ``values_only``: MAX's values
        without the argmax."""
        from ..kernels import pooling as compiled  # imports numba: only when it is used
        frame = (*self._kernel, *self._stride, *self._pad, self._direct)
        if values_only:
            run = compiled.max_value_kernel(*frame)
            cores.split(np, self._planes, lambda a, b: run(x[a:b], y[a:b]))
        elif self._max:
            run = compiled.max_forward_kernel(*frame)
            cores.split(np, self._planes, lambda a, b: run(x[a:b], y[a:b], self._argmax[a:b]))
        else:
            run = compiled.ave_forward_kernel(*frame)
            cores.split(np, self._planes, lambda a, b: run(x[a:b], y[a:b], self._divisor))

    def _backward_kernel(self, dy, dx) -> None:
        from ..kernels import pooling as compiled
        frame = (*self._kernel, *self._stride, *self._pad, self._direct, self._tiles)
        if self._max:
            run = compiled.max_backward_kernel(*frame)
            cores.split(np, self._planes, lambda a, b: run(dy[a:b], self._argmax[a:b], dx[a:b]))
        else:
            run = compiled.ave_backward_kernel(*frame)
            cores.split(np, self._planes, lambda a, b: run(dy[a:b], self._divisor, dx[a:b]))

    def _forward_global(self, xp, x, y) -> None:
        flat = x.reshape(self._planes, -1)
        if self._max:
            argmax = self._argmax.reshape(self._planes, 1)
            argmax[...] = flat.argmax(axis=1)[:, None]
            y[...] = xp.take_along_axis(flat, argmax, axis=1).reshape(y.shape)
        else:
            y[...] = (flat.sum(axis=1, dtype=np.float32) / np.float32(flat.shape[1])).reshape(
                y.shape)

    def _write_mask(self, xp, mask) -> None:
        """Caffe's mask top: the argmax as a flat index ``h * W + w`` into the bottom plane."""
        w = self._shape[3]
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._pad
        start = ((np.arange(self._oh) * sh - ph)[:, None] * w
                 + (np.arange(self._ow) * sw - pw)[None, :])
        step = (np.arange(kh)[:, None] * w + np.arange(kw)[None, :]).reshape(-1)
        mask[...] = xp.asarray(start.astype(np.float32)) + xp.asarray(
            step.astype(np.float32))[self._argmax]

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down or not propagate_down[0]:
            return
        xp = bottom[0].xp
        dy, dx = self._planar(top[0].diff), self._planar(bottom[0].diff)
        if self._stochastic:
            self._backward_stochastic(xp, dy, dx)
            return
        if self._global:
            self._backward_global(xp, dy, dx)
            return
        if self._fast:
            if self._argmax_due:  # the forward took the values only
                self._forward_kernel(self._planar(bottom[0].data),
                                     scratch(xp, "pooling.values", dy.shape))
                self._argmax_due = False
            self._backward_kernel(dy, dx)
            return
        if not self._direct and self._grad is None:
            self._grad = xp.empty_like(self._buffer)
        for block in self._blocks():
            grad = dx[block] if self._direct else self._grad[block]
            self._backward_block(xp, dy[block], grad, block)
            if not self._direct:
                xp.copyto(dx[block][self._crop], grad[self._inner])
        if not self._direct:
            # Rows/columns that no window reaches (FLOOR rounding) get no gradient.
            dx[:, self._crop[1].stop:, :] = 0
            dx[:, :, self._crop[2].stop:] = 0

    def _backward_block(self, xp, dy, grad, block: slice) -> None:
        """MAX routes each top diff to its argmax through multiplies by the hit mask, so a
        non-finite top diff would also reach the other cells of its window (as NaN)."""
        argmax = self._argmax[block] if self._max else None
        hit = self._better[block] if self._max else None
        if self._tiles:
            # Disjoint windows covering the image: every cell is written exactly once.
            if self._max:
                for offset, window in self._windows(grad):
                    xp.equal(argmax, offset, out=hit)
                    xp.multiply(dy, hit, out=window)
            else:
                share = dy / self._divisor
                for _, window in self._windows(grad):
                    xp.copyto(window, share)
            return
        grad.fill(0)
        if self._max:
            routed = xp.empty_like(dy)
            for offset, window in self._windows(grad):
                xp.equal(argmax, offset, out=hit)
                xp.multiply(dy, hit, out=routed)  # branch-free, unlike add(where=hit)
                window += routed
        else:
            share = dy / self._divisor
            for _, window in self._windows(grad):
                window += share

    def _backward_global(self, xp, dy, dx) -> None:
        flat = dx.reshape(self._planes, -1)
        if self._max:
            flat.fill(0)
            # Plain fancy indexing: CuPy has no put_along_axis.
            flat[xp.arange(self._planes), self._argmax.ravel()] = dy.ravel()
        else:
            flat[...] = dy.reshape(self._planes, 1) / np.float32(flat.shape[1])
