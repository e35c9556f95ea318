"""Margin losses: HingeLoss (one-vs-all SVM loss on class scores) and ContrastiveLoss (pulls
similar pairs of embeddings together and pushes dissimilar ones past a margin)."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .loss import _buffer, check_same_batch, label_indices, read_labels, refuse_label_gradient
from .registry import register


@register
class HingeLoss(Layer):
    """loss = Σ_n Σ_c max(0, 1 - t_nc·x_nc)^p / N with t_nc = +1 for the label class and -1
    otherwise; p = 1 for ``hinge_loss_param.norm: L1`` (default), 2 for L2.

    Bottoms: scores (N, ...) viewed as (N, D), D = count / N, and labels (N values) in [0, D).
    Top: the loss, shape (). Gradient to the scores: -t·p·margin^(p-1)·loss_weight/N where
    the margin is positive (for L1, Caffe's sign of the margin: 0 where it is 0).
    """

    type = "HingeLoss"
    exact_num_bottom = 2
    exact_num_top = 1
    is_loss = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.norm = self.param.hinge_loss_param.norm
        self._margin = None  # max(0, 1 - t·x) as (N, D), sized in reshape
        self._sign = None  # -t as (N, D): +1 off the label, -1 at it

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        x, labels = bottom[0].data, bottom[1].data
        check_same_batch(self, x, labels)
        num = x.shape[0]
        if labels.size != num:
            raise self.shape_error(f"labels {tuple(labels.shape)} must hold one class index "
                                   f"per sample ({num} values)")
        self._dims = (num, x.size // max(1, num), 1)
        shape = self._dims[:2]
        xp = bottom[0].xp
        self._margin = _buffer(self._margin, shape, x, xp)
        self._sign = _buffer(self._sign, shape, x, xp)
        top[0].reshape(())

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        label, valid = read_labels(self, bottom[1].data, self._dims, None, xp)
        sign, margin = self._sign, self._margin
        sign.fill(1)
        sign.reshape(-1)[label_indices(label, valid, self._dims, xp).reshape(-1)] = -1
        # 1 - t·x = 1 + sign·x
        xp.multiply(bottom[0].data.reshape(margin.shape), sign, out=margin)
        margin += np.float32(1)
        xp.maximum(margin, np.float32(0), out=margin)
        flat = margin.reshape(-1)
        total = flat.sum(dtype=np.float32) if self.norm == caffe_pb2.HingeLossParameter.L1 \
            else xp.dot(flat, flat)
        top[0].data[...] = total / np.float32(max(1, self._dims[0]))

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        refuse_label_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dx = bottom[0].diff.reshape(self._margin.shape)
        scale = top[0].diff / np.float32(max(1, self._dims[0]))
        if self.norm == caffe_pb2.HingeLossParameter.L1:
            xp.sign(self._margin, out=dx)
        else:
            xp.multiply(self._margin, np.float32(2), out=dx)
        dx *= self._sign
        dx *= scale


@register
class ContrastiveLoss(Layer):
    """loss = Σ_n [y_n·d_n² + (1 - y_n)·max(margin - d_n, 0)²] / (2N), d_n = ‖a_n - b_n‖,
    or with ``legacy_version`` (1 - y_n)·max(margin - d_n², 0) for the dissimilar term.

    Bottoms: a and b (N, C, 1, 1) (or (N, C)), and the similarity y (N values; nonzero after
    truncation to int means similar, as Caffe's static_cast<int>). Top: the loss, shape ().
    a and b get gradients; y gets none (Caffe never writes it). Like Caffe, the non-legacy
    gradient divides by d + 1e-4 so identical pairs do not divide by zero.
    """

    type = "ContrastiveLoss"
    exact_num_bottom = 3
    exact_num_top = 1
    is_loss = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        cp = self.param.contrastive_loss_param
        self.margin = np.float32(cp.margin)
        self.legacy = cp.legacy_version
        self._diff = None  # a - b as (N, C), sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        a, b, y = (blob.data for blob in bottom)
        for name, arr in (("a", a), ("b", b)):
            if arr.ndim < 2 or arr.ndim > 4 or any(d != 1 for d in arr.shape[2:]):
                raise self.shape_error(f"bottom {name} {tuple(arr.shape)} must be (N, C, 1, 1) "
                                       "or (N, C)")
        if a.shape[:2] != b.shape[:2]:
            raise self.shape_error(f"bottoms {tuple(a.shape)} and {tuple(b.shape)} must have "
                                   "the same batch size and channels")
        check_same_batch(self, a, y)
        if y.size != a.shape[0]:
            raise self.shape_error(f"similarity {tuple(y.shape)} must hold one value per pair "
                                   f"({a.shape[0]} values)")
        self._diff = _buffer(self._diff, a.shape[:2], a, bottom[0].xp)
        top[0].reshape(())

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        diff = self._diff
        xp.subtract(bottom[0].data.reshape(diff.shape), bottom[1].data.reshape(diff.shape),
                    out=diff)
        dist_sq = xp.einsum("ij,ij->i", diff, diff)
        similar = xp.trunc(bottom[2].data.reshape(-1)) != 0
        if self.legacy:
            far = xp.maximum(self.margin - dist_sq, np.float32(0))
        else:
            far = xp.maximum(self.margin - xp.sqrt(dist_sq), np.float32(0))
            far = far * far
        total = xp.sum(xp.where(similar, dist_sq, far), dtype=np.float32)
        self._dist_sq, self._similar = dist_sq, similar
        top[0].data[...] = total / np.float32(max(1, diff.shape[0])) / np.float32(2)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        num = np.float32(max(1, self._diff.shape[0]))
        dist_sq, similar = self._dist_sq, self._similar
        if self.legacy:
            active = self.margin - dist_sq > 0
            dissimilar = xp.where(active, np.float32(-1), np.float32(0))
        else:
            dist = xp.sqrt(dist_sq)
            gap = self.margin - dist
            dissimilar = xp.where(gap > 0, -gap / (dist + np.float32(1e-4)), np.float32(0))
        # per-pair factor on (a - b): 1 when similar, else the hinge's derivative
        factor = xp.where(similar, np.float32(1), dissimilar).astype(np.float32)
        for i, sign in ((0, np.float32(1)), (1, np.float32(-1))):
            if not propagate_down[i]:
                continue
            alpha = sign * top[0].diff / num
            dx = bottom[i].diff.reshape(self._diff.shape)
            xp.multiply(self._diff, (factor * alpha)[:, None], out=dx)
        if len(propagate_down) > 2 and propagate_down[2]:
            bottom[2].diff[...] = 0  # the similarity is a label: no gradient

    def allow_force_backward(self, bottom_index: int) -> bool:
        """a and b, not the similarity (Caffe's ContrastiveLossLayer)."""
        return bottom_index != 2
