"""Loss layers: SoftmaxWithLoss (softmax over the class axis, then the mean negative
log-likelihood of the labels), SigmoidCrossEntropyLoss (elementwise logistic loss against
targets in [0, 1]) and EuclideanLoss, with Caffe's normalization modes and ignore_label."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer
from .neuron import sigmoid_into
from .registry import register
from .softmax import softmax_into, split_axis

FLT_MIN = np.float32(np.finfo(np.float32).tiny)
Normalization = caffe_pb2.LossParameter


def normalization_mode(loss_param: caffe_pb2.LossParameter,
                       default: int = Normalization.VALID) -> int:
    """The effective mode: an explicit ``normalization`` wins; otherwise the legacy
    ``normalize`` flag maps true to VALID and false to BATCH_SIZE; otherwise ``default``
    (VALID for SoftmaxWithLoss, BATCH_SIZE for SigmoidCrossEntropyLoss, as in Caffe)."""
    if loss_param.HasField("normalization"):
        return loss_param.normalization
    if loss_param.HasField("normalize"):
        return Normalization.VALID if loss_param.normalize else Normalization.BATCH_SIZE
    return default


def loss_settings(loss_param: caffe_pb2.LossParameter,
                  default: int = Normalization.VALID) -> tuple[int | None, int]:
    """A loss layer's ``ignore_label`` (None when unset) and its normalization mode."""
    ignore = loss_param.ignore_label if loss_param.HasField("ignore_label") else None
    return ignore, normalization_mode(loss_param, default)


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
    finite = xp.isfinite(labels.reshape(-1))
    if not bool(finite.all()):
        at = int(xp.argmin(finite))
        raise layer.error(f"label {at} of the batch is {float(labels.reshape(-1)[at])}, not a "
                          f"class index in [0, {channels}); fix the labels")
    label = labels.reshape(outer, inner).astype(np.int64)
    valid = label != ignore_label if ignore_label is not None else xp.ones(label.shape, bool)
    bad = valid & ((label < 0) | (label >= channels))
    if bool(bad.any()):
        at = int(xp.argmax(bad.reshape(-1)))
        value = int(label.reshape(-1)[at])
        ignore = "" if ignore_label is None else f" (ignore_label is {ignore_label})"
        raise layer.error(f"label value {value} (label {at} of the batch) is outside "
                          f"[0, {channels}) for {channels} classes{ignore}; fix the labels or "
                          f"set ignore_label: {value}")
    return label, valid


def label_indices(label: Any, valid: Any, dims: tuple[int, int, int], xp: Any) -> Any:
    """Flat indices of the label's entry in an (outer, C, inner) array (class 0 where ignored,
    so every index is in range)."""
    outer, channels, inner = dims
    cls = xp.where(valid, label, 0)
    base = (xp.arange(outer, dtype=np.int64)[:, None] * (channels * inner)
            + xp.arange(inner, dtype=np.int64)[None, :])
    return base + cls * inner


class SoftmaxLoss(Layer):
    """What SoftmaxWithLoss and InfogainLoss share (in Caffe both run an inner softmax and one
    get_normalizer): the probabilities as (outer, C, inner) and the optional top holding them,
    the loss divided by the normalizer over the valid positions, and the gradient zeroed where
    ignored and scaled by loss_weight / normalizer. Subclasses set ``_dims``, ``ignore_label``,
    ``mode`` and, in forward, ``_valid``."""

    def shape_tops(self, bottom: list[Blob], top: list[Blob]) -> None:
        """The loss top (shape ()), the probabilities top (shaped as the scores) and buffer."""
        scores = bottom[0].data
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(scores.shape)
        prob = self._prob
        if prob is None or prob.shape != self._dims or not isinstance(prob, type(scores)):
            self._prob = bottom[0].xp.empty(self._dims, dtype=np.float32)

    def softmax_and_labels(self, bottom: list[Blob]) -> tuple[Any, Any]:
        """Fill the probabilities from the scores; the labels and where they are valid."""
        xp = bottom[0].xp
        softmax_into(bottom[0].data.reshape(self._dims), self._prob, xp)
        return read_labels(self, bottom[1].data, self._dims, self.ignore_label, xp)

    def write_loss(self, total: Any, valid: Any, top: list[Blob], xp: Any) -> None:
        """Top 0: ``total`` / the normalizer; top 1, if present, the probabilities."""
        outer, _, inner = self._dims
        valid_count = int(valid.sum()) if self.ignore_label is not None else outer * inner
        self._norm = normalizer(self.mode, outer, inner, valid_count)
        top[0].data[...] = total / np.float32(self._norm)
        if len(top) > 1:
            xp.copyto(top[1].data, self._prob.reshape(top[1].data.shape))

    def scale_gradient(self, dx: Any, top: list[Blob], xp: Any) -> None:
        """``dx`` (outer, C, inner): exactly 0 where ignored, even where the probabilities are
        NaN; then times loss_weight / normalizer, computed in float32 as Caffe does."""
        if self.ignore_label is not None:
            xp.copyto(dx, np.float32(0), where=~self._valid[:, None, :])
        dx *= top[0].diff / np.float32(self._norm)


@register
class SoftmaxWithLoss(SoftmaxLoss):
    """loss = -Σ log max(p[label], FLT_MIN) / normalizer, p = softmax(scores, axis).

    Bottoms: scores (outer, C, inner...) and labels (outer·inner values). Tops: the loss,
    shape (), and optionally the probabilities, shaped as the scores.
    """

    type = "SoftmaxWithLoss"
    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    deploy_as = "Softmax"
    is_loss = True
    param_fields = ("softmax_param", "loss_param")

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.ignore_label, self.mode = loss_settings(self.param.loss_param)
        self._prob = None  # softmax of the scores as (outer, C, inner), sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        scores, labels = bottom[0].data, bottom[1].data
        if scores.ndim == 0 or labels.ndim == 0 or scores.shape[0] != labels.shape[0]:
            raise self.shape_error(f"scores {tuple(scores.shape)} and labels "
                                   f"{tuple(labels.shape)} must have the same first dimension")
        self._dims = split_axis(self, tuple(scores.shape), self.param.softmax_param.axis)
        check_label_count(self, scores, labels, self.param.softmax_param.axis, self._dims)
        self.shape_tops(bottom, top)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        label, valid = self.softmax_and_labels(bottom)
        self._index = label_indices(label, valid, self._dims, xp)
        self._valid = valid
        picked = xp.maximum(self._prob.reshape(-1)[self._index], FLT_MIN)
        # where, not a multiply: an ignored position adds exactly 0 even if its scores are
        # inf/NaN (Caffe skips it)
        total = -xp.sum(xp.where(valid, xp.log(picked), np.float32(0)), dtype=np.float32)
        self.write_loss(total, valid, top, xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """d scores = (p - onehot(label)) · loss_weight / normalizer, 0 where ignored."""
        refuse_label_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dx = bottom[0].diff.reshape(self._dims)
        xp.copyto(dx, self._prob)
        flat = dx.reshape(-1)
        flat[self._index] -= 1
        self.scale_gradient(dx, top, xp)


def refuse_label_gradient(layer: Layer, propagate_down: list[bool], index: int,
                          what: str) -> None:
    """Loss layers give no gradient to their labels/targets: asking for one is an error."""
    if len(propagate_down) > index and propagate_down[index]:
        raise layer.error(f"cannot backpropagate to the {what} (bottom {index}); set "
                          "propagate_down: false for it", field="propagate_down")


def check_same_batch(layer: Layer, a: Any, b: Any) -> None:
    """Caffe's LossLayer rule: both bottoms have the same first dimension (the batch size);
    a 0-d bottom has none and fails it."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise layer.shape_error(f"bottoms {tuple(a.shape)} and {tuple(b.shape)} must have the "
                                "same first dimension (the batch size)")


def _buffer(buffer: Any, shape: tuple[int, ...], like: Any, xp: Any, dtype: Any = np.float32
            ) -> Any:
    """``buffer`` if it still has ``shape`` and ``like``'s array module, else a new one."""
    if buffer is None or buffer.shape != shape or not isinstance(buffer, type(like)):
        return xp.empty(shape, dtype=dtype)
    return buffer


@register
class EuclideanLoss(Layer):
    """loss = Σ (a - b)² / (2N), N = a.shape[0]; a and b have the same batch size and the
    same count per sample (shapes may differ otherwise, e.g. (N, 784) and (N, 1, 28, 28)).

    Both bottoms get gradients: d a = +w·(a - b)/N, d b = -w·(a - b)/N with w the loss weight,
    so unlike the label of a classification loss, ``force_backward`` reaches bottom 1 too.
    """

    type = "EuclideanLoss"
    exact_num_bottom = 2
    exact_num_top = 1
    is_loss = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._diff = None  # a - b, shaped as bottom 0, sized in reshape

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        a, b = bottom[0].data, bottom[1].data
        check_same_batch(self, a, b)
        if a.size != b.size:
            raise self.shape_error(f"bottoms {tuple(a.shape)} and {tuple(b.shape)} must have "
                                   f"the same number of values per sample "
                                   f"({a.size // max(1, a.shape[0])} vs "
                                   f"{b.size // max(1, b.shape[0])})")
        top[0].reshape(())
        self._diff = _buffer(self._diff, a.shape, a, bottom[0].xp)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp, a = bottom[0].xp, bottom[0].data
        diff = self._diff
        xp.subtract(a, bottom[1].data.reshape(a.shape), out=diff)
        flat = diff.reshape(-1)
        # a float32 dot, as Caffe's caffe_cpu_dot
        top[0].data[...] = xp.dot(flat, flat) / np.float32(max(1, a.shape[0])) / np.float32(2)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        num = np.float32(max(1, bottom[0].data.shape[0]))
        for i, sign in ((0, np.float32(1)), (1, np.float32(-1))):
            if not propagate_down[i]:
                continue
            alpha = sign * top[0].diff / num  # float32, as Caffe's Dtype alpha
            xp.multiply(self._diff.reshape(bottom[i].diff.shape), alpha, out=bottom[i].diff)

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Both bottoms are differentiable inputs (Caffe's EuclideanLossLayer says true)."""
        return True


@register
class SigmoidCrossEntropyLoss(Layer):
    """loss = -Σ [t·log σ(x) + (1-t)·log(1-σ(x))] / normalizer over the non-ignored elements,
    computed stably as Σ [max(x, 0) - x·t + log(1 + exp(-|x|))].

    Bottoms: scores x (N, ...) and targets t in [0, 1] of the same count. Top: the loss,
    shape (). Caffe's default normalization here is BATCH_SIZE (divide by N), not VALID; an
    element whose target truncates to ``ignore_label`` (Caffe's static_cast<int>) adds 0 and
    gets gradient 0. d x = (σ(x) - t)·loss_weight/normalizer; the targets get none.
    """

    type = "SigmoidCrossEntropyLoss"
    exact_num_bottom = 2
    exact_num_top = 1
    is_loss = True
    param_fields = ("loss_param",)

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.ignore_label, self.mode = loss_settings(self.param.loss_param,
                                                     default=Normalization.BATCH_SIZE)
        # flat (count,) buffers sized in reshape: σ(x) for backward and two for the loss terms
        self._sigmoid = self._terms = self._work = None
        self._ignored = None  # bool (count,) mask of ignored elements, with ignore_label

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        x, t = bottom[0].data, bottom[1].data
        check_same_batch(self, x, t)
        if x.size != t.size:
            raise self.shape_error(f"scores {tuple(x.shape)} and targets {tuple(t.shape)} "
                                   f"must have the same count ({x.size} vs {t.size})")
        top[0].reshape(())
        xp, shape = bottom[0].xp, (x.size,)
        self._sigmoid = _buffer(self._sigmoid, shape, x, xp)
        self._terms = _buffer(self._terms, shape, x, xp)
        self._work = _buffer(self._work, shape, x, xp)
        if self.ignore_label is not None:
            self._ignored = _buffer(self._ignored, shape, x, xp, dtype=bool)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x, t = bottom[0].data.reshape(-1), bottom[1].data.reshape(-1)
        terms, work = self._terms, self._work
        # log(1 + exp(-|x|)) + max(x, 0) - x·t: no overflow for any float32 x
        xp.abs(x, out=terms)
        xp.negative(terms, out=terms)
        xp.exp(terms, out=terms)
        xp.log1p(terms, out=terms)
        xp.maximum(x, np.float32(0), out=work)
        terms += work
        xp.multiply(x, t, out=work)
        terms -= work
        valid_count = x.size
        if self.ignore_label is not None:
            ignored = self._ignored
            xp.trunc(t, out=work)  # Caffe compares static_cast<int>(target)
            xp.equal(work, np.float32(self.ignore_label), out=ignored)
            # copyto, not a multiply: an ignored element adds exactly 0 even if inf/NaN
            xp.copyto(terms, np.float32(0), where=ignored)
            valid_count -= int(ignored.sum())
        total = xp.sum(terms, dtype=np.float32)
        shape = bottom[0].data.shape  # Caffe: outer = shape(0), inner = count(1)
        self._norm = normalizer(self.mode, shape[0], int(np.prod(shape[1:])), valid_count)
        top[0].data[...] = total / np.float32(self._norm)
        sigmoid_into(x, self._sigmoid, xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """d x = (σ(x) - t) · loss_weight / normalizer, 0 where ignored."""
        refuse_label_gradient(self, propagate_down, 1, "targets")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dx = bottom[0].diff.reshape(-1)
        xp.subtract(self._sigmoid, bottom[1].data.reshape(-1), out=dx)
        if self.ignore_label is not None:
            xp.copyto(dx, np.float32(0), where=self._ignored)
        dx *= top[0].diff / np.float32(self._norm)
