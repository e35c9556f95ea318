"""Accuracy: the fraction of predictions whose label is among the top_k scores (a metric, no
backward), with an optional per-class breakdown."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from .base import Layer
from .loss import check_label_count, label_indices, read_labels
from .registry import register
from .softmax import split_axis


@register
class Accuracy(Layer):
    """Bottoms: scores (outer, C, inner...) and labels (outer·inner values). Tops: accuracy,
    shape (), and optionally per-class accuracy, shape (C,).

    Caffe's tie rule: a prediction is correct when fewer than top_k *other* classes score at
    least as high as the label's class, so a tie with the label counts against it.
    """

    type = "Accuracy"
    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    is_metric = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        ap = self.param.accuracy_param
        self.top_k = int(ap.top_k)
        self.ignore_label = ap.ignore_label if ap.HasField("ignore_label") else None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        scores, labels = bottom[0].data, bottom[1].data
        axis = self.param.accuracy_param.axis
        self._dims = split_axis(self, tuple(scores.shape), axis)
        check_label_count(self, scores, labels, axis, self._dims)
        channels = self._dims[1]
        if self.top_k > channels:
            raise self.shape_error(f"top_k {self.top_k} exceeds the number of classes "
                                   f"{channels} in scores {tuple(scores.shape)}")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((channels,))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        scores = bottom[0].data.reshape(self._dims)
        label, valid = read_labels(self, bottom[1].data, self._dims, self.ignore_label, xp)
        true_score = scores.reshape(-1)[label_indices(label, valid, self._dims, xp)]
        # The label's own class is always >= itself, hence the -1.
        rivals = xp.count_nonzero(scores >= true_score[:, None, :], axis=1) - 1
        correct = (rivals < self.top_k) & valid
        num_valid = np.float32(int(valid.sum()))
        hits = np.float32(int(correct.sum()))
        # float32 division, as Caffe's accuracy / count
        top[0].data[...] = hits / num_valid if num_valid else np.float32(0)
        if len(top) > 1:
            channels = self._dims[1]
            seen = xp.bincount(label[valid], minlength=channels)
            right = xp.bincount(label[correct], minlength=channels)
            per_class = right.astype(np.float32) / xp.maximum(seen, 1).astype(np.float32)
            top[1].data[...] = per_class
