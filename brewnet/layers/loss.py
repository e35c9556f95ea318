"""SoftmaxWithLoss: softmax over the class axis, then the mean negative log-likelihood of the
labels, with Caffe's normalization modes and ignore_label."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .registry import register
from .softmax import softmax_into, split_axis

FLT_MIN = np.float32(np.finfo(np.float32).tiny)
Normalization = caffe_pb2.LossParameter


def normalization_mode(loss_param: caffe_pb2.LossParameter) -> int:
    """The effective mode: an explicit ``normalization`` wins; otherwise the legacy
    ``normalize`` flag maps true to VALID and false to BATCH_SIZE; otherwise VALID."""
    if not loss_param.HasField("normalization") and loss_param.HasField("normalize"):
        return Normalization.VALID if loss_param.normalize else Normalization.BATCH_SIZE
    return loss_param.normalization


def normalizer(mode: int, outer: int, inner: int, valid_count: int) -> float:
    """The loss divisor for ``mode``, at least 1 (Caffe's get_normalizer)."""
    if mode == Normalization.FULL:
        value = outer * inner
    elif mode == Normalization.VALID:
        value = valid_count
    elif mode == Normalization.BATCH_SIZE:
        value = outer
    else:  # NONE
        value = 1
    return max(1.0, float(value))


def check_label_count(layer: Layer, scores: Any, labels: Any, axis: int,
                      dims: tuple[int, int, int]) -> None:
    """Caffe's shape rule for classification bottoms: one label per prediction, i.e.
    outer·inner labels (N·H·W for scores (N, C, H, W) and axis 1)."""
    outer, channels, inner = dims
    if labels.size != outer * inner:
        raise layer.shape_error(
            f"label count {labels.size} (label shape {tuple(labels.shape)}) must equal the "
            f"number of predictions {outer * inner} for scores {tuple(scores.shape)} with "
            f"axis {axis}: one class index in [0, {channels}) per prediction")


def read_labels(layer: Layer, labels: Any, dims: tuple[int, int, int],
                ignore_label: int | None, xp: Any) -> tuple[Any, Any]:
    """Integer labels (truncated as Caffe's static_cast<int>) and a validity mask, both of
    shape (outer, inner); a label outside [0, C) that is not ignored is a NetError."""
    outer, channels, inner = dims
    label = labels.reshape(outer, inner).astype(np.int64)
    valid = label != ignore_label if ignore_label is not None else xp.ones(label.shape, bool)
    bad = valid & ((label < 0) | (label >= channels))
    if bool(bad.any()):
        value = int(label[bad][0])
        raise layer.error(f"label value {value} is outside [0, {channels}) for {channels} "
                          f"classes; fix the labels or set ignore_label: {value}")
    return label, valid


def label_indices(label: Any, valid: Any, dims: tuple[int, int, int], xp: Any) -> Any:
    """Flat indices of the label's entry in an (outer, C, inner) array (class 0 where ignored,
    so every index is in range)."""
    outer, channels, inner = dims
    cls = xp.where(valid, label, 0)
    base = (xp.arange(outer, dtype=np.int64)[:, None] * (channels * inner)
            + xp.arange(inner, dtype=np.int64)[None, :])
    return base + cls * inner


@register
class SoftmaxWithLoss(Layer):
    """loss = -Σ log max(p[label], FLT_MIN) / normalizer, p = softmax(scores, axis).

    Bottoms: scores (outer, C, inner...) and labels (outer·inner values). Tops: the loss,
    shape (), and optionally the probabilities, shaped as the scores.
    """

    type = "SoftmaxWithLoss"
    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    is_loss = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(lp)
        self._prob = None  # softmax of the scores as (outer, C, inner), sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        scores, labels = bottom[0].data, bottom[1].data
        if scores.ndim == 0 or labels.ndim == 0 or scores.shape[0] != labels.shape[0]:
            raise self.shape_error(f"scores {tuple(scores.shape)} and labels "
                                   f"{tuple(labels.shape)} must have the same first dimension")
        self._dims = split_axis(self, tuple(scores.shape), self.param.softmax_param.axis)
        check_label_count(self, scores, labels, self.param.softmax_param.axis, self._dims)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(scores.shape)
        prob = self._prob
        if prob is None or prob.shape != self._dims or not isinstance(prob, type(scores)):
            self._prob = bottom[0].xp.empty(self._dims, dtype=np.float32)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        prob = self._prob
        softmax_into(bottom[0].data.reshape(self._dims), prob, xp)
        label, valid = read_labels(self, bottom[1].data, self._dims, self.ignore_label, xp)
        self._index = label_indices(label, valid, self._dims, xp)
        self._valid = valid
        picked = xp.maximum(prob.reshape(-1)[self._index], FLT_MIN)
        # where, not a multiply: an ignored position adds exactly 0 even if its scores are
        # inf/NaN (Caffe skips it)
        total = -xp.sum(xp.where(valid, xp.log(picked), np.float32(0)), dtype=np.float32)
        outer, _, inner = self._dims
        valid_count = int(valid.sum()) if self.ignore_label is not None else outer * inner
        self._norm = normalizer(self.mode, outer, inner, valid_count)
        top[0].data[...] = total / np.float32(self._norm)
        if len(top) > 1:
            xp.copyto(top[1].data, prob.reshape(top[1].data.shape))

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """d scores = (p - onehot(label)) · loss_weight / normalizer, 0 where ignored."""
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to the labels (bottom 1); set "
                             "propagate_down: false for it")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dx = bottom[0].diff.reshape(self._dims)
        xp.copyto(dx, self._prob)
        flat = dx.reshape(-1)
        flat[self._index] -= 1
        if self.ignore_label is not None:
            # exactly 0 where ignored, even where the probabilities are NaN
            xp.copyto(dx, np.float32(0), where=~self._valid[:, None, :])
        # Caffe scales by loss_weight / normalizer, computed in float32
        dx *= top[0].diff / np.float32(self._norm)
