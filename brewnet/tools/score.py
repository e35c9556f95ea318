"""Scoring a trained net as ``caffe test`` does: forward passes over N batches, every output
element averaged over them, in Caffe's log wording (``Batch i, <out> = v``, ``Loss: x``,
``<out> = mean (* w = w·mean loss)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..errors import BrewnetError
from ..solver.report import num, value_text

Outputs = list[tuple[str, np.ndarray, float]]


@dataclass
class Score:
    """The averages of ``iterations`` batches: ``loss`` and, per output blob, (name, mean of
    each element (flattened), loss weight)."""

    iterations: int
    loss: float
    outputs: Outputs


def score_net(net: Any, iterations: int,
              on_batch: Callable[[int, Outputs], None] | None = None) -> Score:
    """Run ``iterations`` forward passes of ``net`` and average its outputs element-wise in
    float32, Caffe's type. ``on_batch(i, outputs)`` sees each batch's (name, values, weight)."""
    if iterations < 1:
        raise BrewnetError(f"--iterations {iterations}: give a positive number of batches")
    weights = net.blob_loss_weights
    loss = np.float32(0)
    sums: list[np.ndarray] = []
    for i in range(iterations):
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
    means = [(name, acc / n, weight) for (name, _, weight), acc in zip(batch, sums, strict=True)]
    return Score(iterations, float(loss / n), means)


def batch_lines(i: int, outputs: Outputs) -> Iterator[str]:
    """``Batch <i>, <out> = <v>``, one line per output element."""
    for name, values, _ in outputs:
        for v in values:
            yield f"Batch {i}, {name} = {num(v)}"


def summary_lines(score: Score) -> Iterator[str]:
    """``Loss: <x>`` then ``<out> = <mean>[ (* w = w·mean loss)]`` per output element."""
    yield f"Loss: {num(np.float32(score.loss))}"
    for name, means, weight in score.outputs:
        for v in means:
            yield value_text(name, v, weight)
