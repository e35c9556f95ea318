"""Scoring a trained net as ``caffe test`` does: forward passes over N batches, every output
element averaged over them, in Caffe's log wording (``Batch i, <out> = v``, ``Loss: x``,
``<out> = mean (* w = w·mean loss)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import BrewnetError
from ..net.scoring import Outputs, Score, average_outputs
from ..solver.report import num, value_text


def score_net(net: Any, iterations: int,
              on_batch: Callable[[int, Outputs], None] | None = None) -> Score:
    """Run ``iterations`` forward passes of ``net`` and average its outputs element-wise in
    float32, Caffe's type. ``on_batch(i, outputs)`` sees each batch's (name, values, weight)."""
    if iterations < 1:
        raise BrewnetError(f"--iterations {iterations}: give a positive number of batches")
    return average_outputs(net, iterations, on_batch)


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
