"""InnerProduct (fully connected): every input axis from ``axis`` on is flattened into K
features and mapped to ``num_output`` = N outputs by one float32 GEMM."""

from __future__ import annotations

import numpy as np

from .. import batched, cores
from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis, count

# Multiply-adds below which a GEMM runs on one core: splitting costs a hand-over (~50 us).
_SPLIT_MACS = 1 << 20


@register
class InnerProduct(Layer):
    """top = X·Wᵀ + b, X the bottom viewed as (M, K), K = count(axis..), M = count(..axis).

    W is (N, K), or (K, N) with ``transpose: true`` (then top = X·W); b is (N,). The top is
    bottom.shape[:axis] + (N,).
    """

    type = "InnerProduct"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        ip = self.param.inner_product_param
        if ip.num_output == 0:
            raise self.error("inner_product_param.num_output must be set to a positive number",
                             field="inner_product_param.num_output")
        self.num_output = int(ip.num_output)
        self.bias_term = bool(ip.bias_term)
        self.transpose = bool(ip.transpose)
        shape = tuple(bottom[0].data.shape)
        self.axis = canonical_axis(self, ip.axis, len(shape))
        self.k = count(shape, self.axis)
        n, k = self.num_output, self.k
        self._wgrad = None
        specs = [((k, n) if self.transpose else (n, k), ip.weight_filler, "weight_filler")]
        if self.bias_term:
            specs.append(((n,), ip.bias_filler, "bias_filler"))
        self.init_params(specs, bottom[0].xp)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        k = count(shape, self.axis) if len(shape) > self.axis else -1
        if k != self.k:
            raise self.shape_error(f"bottom shape {shape} gives {k} input features from axis "
                                   f"{self.axis} but the weights expect {self.k}")
        self.m = count(shape, 0, self.axis)
        top[0].reshape(shape[:self.axis] + (self.num_output,))
        weight = self.blobs[0].data
        if (self._wgrad is None or self._wgrad.shape != weight.shape
                or not isinstance(self._wgrad, type(weight))):
            # scratch for the weight gradient, which is then added into the diff
            self._wgrad = bottom[0].xp.empty(weight.shape, dtype=np.float32)

    def _split(self, xp, size: int, function) -> None:
        """``function(start, stop)`` over ranges of ``size`` weight rows or columns, split over
        the cores when the GEMM is large enough to pay for it (LeNet's ip2 is not)."""
        large = self.m * self.k * self.num_output >= _SPLIT_MACS
        cores.split(xp, size, function, minimum=1 if large else size)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.m, self.k)
        y = top[0].data.reshape(self.m, self.num_output)
        w = self.blobs[0].data
        wt = w if self.transpose else w.T  # (K, N)
        bias = self.blobs[1].data if self.bias_term else None

        def outputs(a: int, b: int) -> None:
            xp.matmul(x, wt[:, a:b], out=y[:, a:b])
            if bias is not None:
                y[:, a:b] += bias[a:b]

        self._split(xp, self.num_output, outputs)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        dy = top[0].diff.reshape(self.m, self.num_output)
        want = self.param_propagate_down  # the net sets one entry per parameter blob
        w = self.blobs[0].data
        if want[0]:
            x = bottom[0].data.reshape(self.m, self.k)
            # dW (N, K) = dYᵀ·X, or with ``transpose`` (K, N) = Xᵀ·dY; each range its outputs.
            if self.transpose:
                self._split(xp, self.num_output, lambda a, b: batched.product(
                    xp, x.T, dy[:, a:b], self._wgrad[:, a:b]))
            else:
                self._split(xp, self.num_output, lambda a, b: batched.product(
                    xp, dy[:, a:b].T, x, self._wgrad[a:b]))
            self.blobs[0].diff += self._wgrad
        if self.bias_term and want[1]:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.m, self.k)
            w_nk = w.T if self.transpose else w  # (N, K); each range its input features
            self._split(xp, self.k, lambda a, b: xp.matmul(dy, w_nk[:, a:b], out=dx[:, a:b]))
