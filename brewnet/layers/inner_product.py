"""InnerProduct (fully connected): every input axis from ``axis`` on is flattened into K
features and mapped to ``num_output`` = N outputs by one float32 GEMM."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis, count


@register
class InnerProduct(Layer):
    """top = X·Wᵀ + b, X the bottom viewed as (M, K), K = count(axis..), M = count(..axis).

    W is (N, K), or (K, N) with ``transpose: true`` (then top = X·W); b is (N,). The top is
    bottom.shape[:axis] + (N,).
    """

    type = "InnerProduct"
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

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.m, self.k)
        y = top[0].data.reshape(self.m, self.num_output)
        w = self.blobs[0].data
        xp.matmul(x, w if self.transpose else w.T, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        dy = top[0].diff.reshape(self.m, self.num_output)
        want = self.param_propagate_down  # the net sets one entry per parameter blob
        if want[0]:
            x = bottom[0].data.reshape(self.m, self.k)
            if self.transpose:  # dW (K, N) = Xᵀ·dY
                xp.matmul(x.T, dy, out=self._wgrad)
            else:  # dW (N, K) = dYᵀ·X
                xp.matmul(dy.T, x, out=self._wgrad)
            self.blobs[0].diff += self._wgrad
        if self.bias_term and want[1]:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            w = self.blobs[0].data
            dx = bottom[0].diff.reshape(self.m, self.k)
            xp.matmul(dy, w.T if self.transpose else w, out=dx)
