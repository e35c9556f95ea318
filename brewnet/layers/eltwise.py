"""Eltwise: element-wise PROD, SUM (with per-bottom coefficients) or MAX of equal-shaped
bottoms."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores, kernels
from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .neuron import relu
from .registry import register

_OP = caffe_pb2.EltwiseParameter


@register
class Eltwise(Layer):
    """top = Π bottoms | Σ coeff_i·bottom_i | max bottoms, all bottoms of one shape.

    MAX follows Caffe's loop: bottom 1 wins a tie with bottom 0, later bottoms must be strictly
    greater; backward routes the diff to the recorded winner. PROD backward uses the product of
    the other bottoms (``stable_prod_grad``) or top / bottom.
    """

    type = "Eltwise"
    reshape_reads_blobs_only = True
    min_bottom = 2
    exact_num_top = 1
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        ep = self.param.eltwise_param
        self.op = ep.operation
        if ep.coeff and len(ep.coeff) != len(bottom):
            raise self.error(f"eltwise_param has {len(ep.coeff)} coeff values for "
                             f"{len(bottom)} bottoms; give one per bottom or none",
                             field="eltwise_param")
        if ep.coeff and self.op == _OP.PROD:
            raise self.error("eltwise_param.coeff applies only to operation SUM",
                             field="eltwise_param.coeff")
        self.coeff = [float(c) for c in ep.coeff] or [1.0] * len(bottom)
        self.stable_prod_grad = bool(ep.stable_prod_grad)
        self.max_idx = None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        for i, b in enumerate(bottom[1:], start=1):
            if tuple(b.data.shape) != shape:
                raise self.shape_error(f"bottom {i} has shape {tuple(b.data.shape)} but bottom 0 "
                                       f"has {shape}; Eltwise needs equal shapes")
        top[0].reshape(shape)
        if self.op == _OP.MAX and (self.max_idx is None or self.max_idx.shape != shape):
            self.max_idx = bottom[0].xp.zeros(shape, dtype=np.int32)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        out = top[0].data
        if self.op == _OP.PROD:
            xp.multiply(bottom[0].data, bottom[1].data, out=out)
            for b in bottom[2:]:
                out *= b.data
        elif self.op == _OP.SUM:
            rest = zip(self.coeff[1:], bottom[1:], strict=True)
            if self.coeff[0] == 1.0 and self.coeff[1] == 1.0:  # one pass: x·1 is x exactly
                a, b, y = (v.reshape(-1) for v in (bottom[0].data, bottom[1].data, out))
                cores.flat(xp, y.size, lambda p, q: xp.add(a[p:q], b[p:q], out=y[p:q]))
                rest = zip(self.coeff[2:], bottom[2:], strict=True)
            else:
                xp.multiply(bottom[0].data, np.float32(self.coeff[0]), out=out)
            for c, b in rest:
                if c == 1.0:
                    out += b.data
                else:
                    out += np.float32(c) * b.data
        else:
            a, b = bottom[0].data, bottom[1].data
            # 1 where bottom 1 wins: a tie goes to it, as Caffe's `if (a > b) ... else` does
            xp.less_equal(a, b, out=self.max_idx, casting="unsafe")
            xp.maximum(a, b, out=out)
            for k, blob in enumerate(bottom[2:], start=2):
                wins = blob.data > out
                self.max_idx[wins] = k
                xp.maximum(out, blob.data, out=out)

    def takes_activation(self) -> bool:
        """Whether ``forward_activated`` runs an in-place ReLU after this layer in one pass:
        a SUM of two bottoms with coefficients 1 (ResNet's shortcut add)."""
        return self.op == _OP.SUM and self.coeff == [1.0, 1.0]

    def forward_activated(self, bottom: list[Blob], top: list[Blob], slope: np.float32
                          ) -> None:
        """``forward``, then the ReLU with negative ``slope`` in place on the top, for
        ``brewnet.net.fusion``: one compiled pass (read two, write one, where the two layers
        read three and write two), or the two forwards as written."""
        xp, y = bottom[0].xp, top[0].data
        if kernels.enabled(xp):
            from ..kernels.elementwise import add_relu

            a, b, yf = (v.reshape(-1) for v in (bottom[0].data, bottom[1].data, y))
            cores.flat(xp, yf.size, lambda p, q: add_relu(a[p:q], b[p:q], yf[p:q], slope))
            return
        self.forward(bottom, top)
        relu(xp, y, y, slope)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        dy = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.data for j, o in enumerate(bottom) if j != i]
                    xp.multiply(others[0], dy, out=b.diff)
                    for o in others[1:]:
                        b.diff *= o
                else:
                    xp.divide(top[0].data, b.data, out=b.diff)
                    b.diff *= dy
            elif self.op == _OP.SUM:
                _scaled(xp, dy, np.float32(self.coeff[i]), b.diff)
            else:
                xp.multiply(dy, self.max_idx == i, out=b.diff)


def _scaled(xp: Any, dy: Any, coeff: np.float32, out: Any) -> None:
    """``out = dy·coeff``, split over the cores."""
    g, d = dy.reshape(-1), out.reshape(-1)
    cores.flat(xp, d.size, lambda p, q: xp.multiply(g[p:q], coeff, out=d[p:q]))
