"""Averaging a net's outputs over forward passes, as Caffe's test pass and ``caffe test`` both
do: every output element summed in float32 over the batches, then divided by their count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy

Outputs = list[tuple[str, np.ndarray, float]]


@dataclass
class Score:
    """The averages of ``iterations`` batches: ``loss`` and, per output blob, (name, mean of
    each element (flattened), loss weight)."""

    iterations: int
    loss: float
    outputs: Outputs


def average_outputs(net: Any, iterations: int,
                    on_batch: Callable[[int, Outputs], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> Score | None:
    """Run ``iterations`` forward passes of ``net`` and average its outputs
    element-wise in float32, Caffe's type. ``on_batch(i, outputs)`` sees each batch's (name,
    values, weight); ``stop()`` is asked before each batch, and True abandons the pass (None)."""
    weights = net.blob_loss_weights
    loss = np.float32(0)
    sums: list[np.ndarray] = []
    for i in range(iterations):
        if stop is not None and stop():
            return None
        loss += np.float32(net.forward_loss())
        batch = [(name, to_numpy(net.blobs[name].data).astype(np.float32).ravel(),
                  weights.get(name, 0.0)) for name in net.outputs]
        if on_batch is not None:
            on_batch(i, batch)
        if i == 0:
            sums = [values.copy() for _, values, _ in batch]
        else:
            for acc, (_, values, _) in zip(sums, batch, strict=True):
                acc += values
    n = np.float32(iterations)
    # zero batches (a solver's test_iter: 0) give no means, as Caffe logs none
    means = [(name, acc / n, weights.get(name, 0.0))
             for name, acc in zip(net.outputs, sums, strict=False)]
    return Score(iterations, float(loss / n), means)
