"""Losses over class probabilities: MultinomialLogisticLoss (the negative log-likelihood of
probabilities a net computed itself) and InfogainLoss (softmax, then a log-likelihood weighted
by an information-gain matrix H, so confusing some classes costs more than others)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..blob import Blob
from ..errors import WeightsError
from ..proto import caffe_pb2
from ..proto.binaryio import read_binary
from ..proto.blobproto import blobproto_to_array
from .base import Layer
from .loss import (
    FLT_MIN,
    SoftmaxLoss,
    check_label_count,
    check_same_batch,
    label_indices,
    loss_settings,
    read_labels,
    refuse_label_gradient,
)
from .registry import register
from .softmax import split_axis

# Caffe's kLOG_THRESHOLD: probabilities are clipped to it before the log.
LOG_THRESHOLD = np.float32(1e-20)


@register
class MultinomialLogisticLoss(Layer):
    """loss = -Σ_n log max(p[n, label_n], 1e-20) / N.

    Bottoms: probabilities (N, ...) viewed as (N, D) with D = count / N, and labels (N,) or
    (N, 1, 1, 1) indexing [0, D). Top: the loss, shape (). Only the probabilities get a
    gradient: -loss_weight / (N · max(p, 1e-20)) at each label, 0 elsewhere.
    """

    type = "MultinomialLogisticLoss"
    exact_num_bottom = 2
    exact_num_top = 1
    is_loss = True

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        probs, labels = bottom[0].data, bottom[1].data
        check_same_batch(self, probs, labels)
        if labels.ndim > 4 or any(d != 1 for d in labels.shape[1:]):
            raise self.shape_error(f"labels {tuple(labels.shape)} must hold one value per "
                                   "sample, shaped (N,) or (N, 1, 1, 1)")
        num = probs.shape[0]
        self._dims = (num, probs.size // max(1, num), 1)
        top[0].reshape(())

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        label, valid = read_labels(self, bottom[1].data, self._dims, None, xp)
        self._index = label_indices(label, valid, self._dims, xp).reshape(-1)
        picked = xp.maximum(bottom[0].data.reshape(-1)[self._index], LOG_THRESHOLD)
        self._picked = picked
        total = -xp.sum(xp.log(picked), dtype=np.float32)
        top[0].data[...] = total / np.float32(max(1, self._dims[0]))

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        refuse_label_gradient(self, propagate_down, 1, "labels")
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = 0
        scale = -top[0].diff / np.float32(max(1, self._dims[0]))
        diff.reshape(-1)[self._index] = scale / self._picked


@register
class InfogainLoss(SoftmaxLoss):
    """loss = -Σ_{n valid} Σ_c H[label_n, c] · log max(p[n, c], FLT_MIN) / normalizer, with
    p = softmax(scores) along ``infogain_loss_param.axis`` (Caffe's InfogainLoss since 2017
    takes scores, not probabilities).

    Bottoms: scores (outer, C, inner...), labels (outer·inner values) and optionally H
    (C·C values); without the third bottom H is read from ``infogain_loss_param.source``, a
    BlobProto binaryproto. Tops: the loss, shape (), and optionally the probabilities.
    Normalization and ignore_label come from loss_param (default VALID). Gradient to the
    scores: (p · Σ_c H[label, c] - H[label, :]) · loss_weight / normalizer.
    """

    type = "InfogainLoss"
    min_bottom = 2
    max_bottom = 3
    min_top = 1
    max_top = 2
    is_loss = True
    param_fields = ("infogain_loss_param", "softmax_param", "loss_param")

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.ignore_label, self.mode = loss_settings(self.param.loss_param)
        self.axis = self.param.infogain_loss_param.axis
        sp = self.param.softmax_param
        if sp.HasField("axis") and sp.axis != self.axis:
            raise self.error(f"softmax_param.axis {sp.axis} differs from infogain_loss_param."
                             f"axis {self.axis}; the softmax runs over the class axis, so "
                             "set only infogain_loss_param.axis", field="softmax_param.axis")
        self._file_h = None
        if len(bottom) < 3:
            self._file_h = self._read_source()
        self._prob = None

    def _read_source(self) -> np.ndarray:
        path = self.param.infogain_loss_param.source
        if not path:
            raise self.error("no infogain matrix: set infogain_loss_param.source to a "
                             "binaryproto holding H, or give H as a third bottom",
                             field="infogain_loss_param.source")
        try:
            bp = read_binary(path, caffe_pb2.BlobProto)
        except WeightsError as e:
            raise self.error(f"infogain_loss_param.source: {e}",
                             field="infogain_loss_param.source") from None
        try:
            return blobproto_to_array(bp)
        except WeightsError as e:
            raise self.error(f"infogain_loss_param.source {os.fspath(path)}: malformed "
                             f"BlobProto ({e})", field="infogain_loss_param.source") from None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        scores, labels = bottom[0].data, bottom[1].data
        check_same_batch(self, scores, labels)
        self._dims = split_axis(self, tuple(scores.shape), self.axis)
        check_label_count(self, scores, labels, self.axis, self._dims)
        channels = self._dims[1]
        h = bottom[2].data if len(bottom) > 2 else self._file_h
        if h.size != channels * channels:
            where = "bottom 2" if len(bottom) > 2 else "infogain_loss_param.source"
            raise self.shape_error(f"infogain matrix from {where} has shape {tuple(h.shape)} "
                                   f"({h.size} values); {channels} classes need "
                                   f"{channels}x{channels}",
                                   field=None if len(bottom) > 2 else "infogain_loss_param.source")
        self.shape_tops(bottom, top)

    def _matrix(self, bottom: list[Blob]) -> Any:
        channels = self._dims[1]
        if len(bottom) > 2:
            return bottom[2].data.reshape(channels, channels)
        h = self._file_h.reshape(channels, channels)
        return bottom[0].xp.asarray(h)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        label, valid = self.softmax_and_labels(bottom)
        cls = xp.where(valid, label, 0)
        h = self._matrix(bottom)
        rows = h[cls].transpose(0, 2, 1)  # H[label, c] as (outer, C, inner)
        logp = xp.log(xp.maximum(self._prob, FLT_MIN))
        # where, not a multiply: an ignored position adds exactly 0 (Caffe skips it)
        terms = xp.where(valid[:, None, :], rows * logp, np.float32(0))
        total = -xp.sum(terms, dtype=np.float32)
        self._rows, self._row_sums, self._valid = rows, h.sum(axis=1)[cls], valid
        self.write_loss(total, valid, top, xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        refuse_label_gradient(self, propagate_down, 1, "labels")
        refuse_label_gradient(self, propagate_down, 2, "infogain matrix")
        if not propagate_down[0]:
            return
        xp = bottom[0].xp
        dx = bottom[0].diff.reshape(self._dims)
        xp.multiply(self._prob, self._row_sums[:, None, :], out=dx)
        dx -= self._rows
        self.scale_gradient(dx, top, xp)

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Only the scores: neither the labels nor H can take a gradient."""
        return bottom_index == 0
