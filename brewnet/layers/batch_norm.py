"""BatchNorm: Caffe's normalization without an affine part (pair it with Scale{bias_term}),
keeping running sums of the batch statistics in three never-learned blobs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores, kernels
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer, learnable_shape_check
from .registry import register
from .structure import count


def _slope(slope: np.float32 | None) -> np.float32:
    """A ReLU's negative slope as the kernels take it: NaN for no ReLU."""
    return np.float32(np.nan) if slope is None else np.float32(slope)


@register
class BatchNorm(Layer):
    """y = (x − μ)/sqrt(σ² + eps) per channel (axis 1) over (N, spatial).

    Blobs: mean_sum (C,), var_sum (C,), s (1,). TRAIN (use_global_stats false): μ, σ² are the
    batch's, and s ← λs + 1, mean_sum ← λ·mean_sum + μ, var_sum ← λ·var_sum + m/(m−1)·σ²
    (m = N·spatial, λ = moving_average_fraction). Global stats: μ = mean_sum/s,
    σ² = var_sum/s (a factor 0 when s == 0). use_global_stats defaults to phase == TEST.
    The blobs are statistics, not weights: setup gives them ParamSpecs with lr_mult 0 (as
    Caffe's LayerSetUp) so no solver ever moves them.
    """

    type = "BatchNorm"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.batch_norm_param
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == caffe_pb2.TEST)
        self.fraction = np.float32(p.moving_average_fraction)
        self.eps = np.float32(p.eps)
        shape = tuple(bottom[0].data.shape)
        self.channels = 1 if len(shape) == 1 else shape[1]
        self._norm = self._std = None
        self._norm_fresh = False  # _norm equals the top as forward left it; not handed out
        shapes = [(self.channels,), (self.channels,), (1,)]
        if self.blobs:
            if len(self.blobs) != 3:
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs 3 "
                                       "(mean, variance, moving-average factor)")
            for j, s in enumerate(shapes):
                learnable_shape_check(self, j, s)
        else:
            self.blobs = [Blob(s, xp=bottom[0].xp) for s in shapes]
            for b in self.blobs:
                b.data[...] = 0
        for j in range(3):
            if j == len(self.param.param):
                self.param.param.add(lr_mult=0)
            elif self.param.param[j].lr_mult != 0:
                raise self.error(f"param {j} has lr_mult {self.param.param[j].lr_mult:g}; "
                                 "BatchNorm's statistics blobs must have lr_mult 0 (or omit "
                                 "the param specs)")

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        channels = 1 if len(shape) == 1 else shape[1]
        if channels != self.channels:
            raise self.shape_error(f"bottom shape {shape} has {channels} channels but the "
                                   f"statistics blobs were made for {self.channels}")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        self.view = (shape[0], self.channels, count(shape, 2))
        data = bottom[0].data
        if self.use_global_stats:
            self._norm = None  # backward needs only the divisor
        elif (self._norm is None or self._norm.shape != self.view
                or not isinstance(self._norm, type(data))):
            self._norm = bottom[0].xp.empty(self.view, dtype=np.float32)  # y, for backward
        if self._std is None or not isinstance(self._std, type(data)):
            self._std = bottom[0].xp.empty((1, self.channels, 1), dtype=np.float32)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.view)
        y = top[0].data.reshape(self.view)
        norm, std = self._norm, self._std
        self._norm_fresh = False
        if self.use_global_stats:
            # Fixed statistics: written straight into the top, no copy kept for backward.
            mean_sum, var_sum, factor = (b.data for b in self.blobs)
            s = factor[0]
            scale = np.float32(0) if s == 0 else np.float32(1) / s
            xp.subtract(x, (mean_sum * scale).reshape(1, -1, 1), out=y)
            xp.add((var_sum * scale).reshape(1, -1, 1), self.eps, out=std)
            xp.sqrt(std, out=std)
            y /= std
            return
        if kernels.enabled(xp):
            from ..kernels.batch_norm import forward

            mean = np.empty(self.channels, dtype=np.float32)
            var = np.empty(self.channels, dtype=np.float32)
            cores.split(xp, self.channels,
                        lambda a, b: forward(x, norm, y, mean, var, std, self.eps, a, b))
        else:
            mean = x.mean(axis=(0, 2), keepdims=True, dtype=np.float32)
            xp.subtract(x, mean, out=norm)  # two-pass variance, E((x − μ)²), as Caffe
            # The squares go to the top, free until the result is copied there (x is read).
            var = xp.multiply(norm, norm, out=y).mean(axis=(0, 2), keepdims=True,
                                                      dtype=np.float32)
            xp.add(var, self.eps, out=std)
            xp.sqrt(std, out=std)
            norm /= std  # divided, not multiplied by a reciprocal, as Caffe
            y[...] = norm
        self._update_sums(mean, var)
        self._norm_fresh = True

    def _update_sums(self, mean: Any, var: Any) -> None:
        """The running sums after a forward with batch statistics ``mean``, ``var`` (C values
        each, any shape)."""
        mean_sum, var_sum, factor = (b.data for b in self.blobs)
        m = self.view[0] * self.view[2]
        correction = np.float32(m / (m - 1) if m > 1 else 1)
        factor *= self.fraction
        factor += np.float32(1)
        mean_sum *= self.fraction
        mean_sum += mean.reshape(-1)
        var_sum *= self.fraction
        var_sum += correction * var.reshape(-1)

    def normalizes_batch(self) -> bool:
        """Whether forward uses the batch's statistics, so that a Scale and a ReLU in place
        after it may run in its own pass (:meth:`forward_affine`, ``brewnet.net.fusion``)."""
        return not self.use_global_stats

    def forward_affine(self, bottom: list[Blob], top: list[Blob], scale: Any, bias: Any,
                       slope: np.float32 | None) -> Any:
        """Forward with batch statistics writing ``act(x̂·scale + bias)`` (``scale``,
        ``bias`` (C,); ``bias`` None: none; ``slope`` None: no ReLU) to the top in the same
        pass as x̂: an in-place Scale and ReLU folded in, by the compiled kernel only. Keeps
        what forward keeps for backward and moves the running sums as forward does; returns
        x̂ (N, C, S), the input the folded Scale's backward reads."""
        from ..kernels.batch_norm import forward_affine

        mean = np.empty(self.channels, dtype=np.float32)
        var = np.empty(self.channels, dtype=np.float32)
        x, y = bottom[0].data.reshape(self.view), top[0].data.reshape(self.view)
        bias = kernels.SKIP if bias is None else bias
        cores.split(np, self.channels, lambda a, b: forward_affine(
            x, self._norm, y, mean, var, self._std, self.eps, scale, bias, _slope(slope), a, b))
        self._update_sums(mean, var)
        self._norm_fresh = False  # the top holds act(x̂·scale + bias), not x̂
        return self._norm

    def kept_top(self) -> Any:
        """The normalized batch kept for backward (an exact copy of the top), once per
        forward with batch statistics: a Scale in place on the top reads it for its weight
        gradient instead of keeping a second copy."""
        kept = self._norm if self._norm_fresh else None
        self._norm_fresh = False
        return kept

    def channel_affine(self) -> tuple[Any, Any] | None:
        """``(a, b)``, each ``(C,)``, with forward's ``y = x·a + b`` from the stored
        statistics as they are now; None with batch statistics (not a fixed map). What
        ``brewnet.net.fusion`` folds into a preceding convolution."""
        if not self.use_global_stats:
            return None
        mean_sum, var_sum, factor = (b.data for b in self.blobs)
        s = factor[0]
        scale = np.float32(0) if s == 0 else np.float32(1) / s
        a = np.float32(1) / self.blobs[0].xp.sqrt(var_sum * scale + self.eps)
        return a, -(mean_sum * scale) * a

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.view)
        dx = bottom[0].diff.reshape(self.view)
        if self.use_global_stats:
            bottom[0].xp.divide(dy, self._std, out=dx)
            return
        # dx = (dy − mean(dy) − y·mean(dy·y)) / sqrt(σ² + eps), means over (N, spatial)
        xp, y = bottom[0].xp, self._norm
        if kernels.enabled(xp):
            from ..kernels.batch_norm import backward

            cores.split(xp, self.channels, lambda a, b: backward(dy, y, self._std, dx, a, b))
            return
        m = np.float32(self.view[0] * self.view[2])
        mean_dy = dy.mean(axis=(0, 2), keepdims=True, dtype=np.float32)
        # Σ dy·y without a product array (in place, dx is dy: no scratch to spare).
        mean_dyy = (xp.einsum("ncs,ncs->c", dy, y) / m).reshape(1, -1, 1)
        grad: Any = y * mean_dyy
        grad += mean_dy
        bottom[0].xp.subtract(dy, grad, out=grad)
        grad /= self._std
        dx[...] = grad

    def backward_affine(self, top: list[Blob], propagate_down: list[bool],
                        bottom: list[Blob], scale: Any, scale_grad: Any, bias_grad: Any,
                        slope: np.float32 | None, dtop: str | None) -> None:
        """Backward of :meth:`forward_affine` in two passes: adds the folded Scale's
        gradients to ``scale_grad`` and ``bias_grad`` ((C,) diffs, None: not wanted), writes
        the bottom's as this layer's backward would (if ``propagate_down[0]``), and leaves in
        the top's diff, when it is not the bottom's, what the unfused layers leave there:
        ``dtop`` "scaled" (the Scale's bottom gradient), "masked" (the ReLU's), or None
        (untouched)."""
        from ..kernels.batch_norm import affine_backward

        empty = kernels.SKIP.reshape(0, 0, 0)
        dy = top[0].diff.reshape(self.view)
        y = empty if slope is None else top[0].data.reshape(self.view)
        scale_grad = kernels.SKIP if scale_grad is None else scale_grad
        bias_grad = kernels.SKIP if bias_grad is None else bias_grad
        dx = bottom[0].diff.reshape(self.view) if propagate_down[0] else empty
        cores.split(np, self.channels, lambda a, b: affine_backward(
            dy, y, self._norm, self._std, scale, _slope(slope), scale_grad, bias_grad, dx,
            dtop or "", a, b))
