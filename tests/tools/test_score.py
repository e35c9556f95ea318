"""Scoring as ``caffe test``: every output element averaged over the batches (float32), and
Caffe's wording for the per-batch and averaged lines."""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.errors import BrewnetError
from brewnet.net import TEST, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.rng import set_random_seed
from brewnet.tools.score import Score, batch_lines, score_net, summary_lines
from tests.tools.tiny import TINY_NET


def _net(seed: int) -> Net:
    set_random_seed(seed)
    return Net(parse_text(TINY_NET, caffe_pb2.NetParameter()), phase=TEST)


def test_score_averages_each_output_over_the_batches():
    """The means equal NumPy's mean of the outputs of the same batches (DummyData draws fresh
    data each forward, so the batches differ), and the loss is the mean of the losses."""
    batches = []
    seen = []
    score = score_net(_net(3), 4, on_batch=lambda i, outputs: seen.append(i))
    reference = _net(3)
    for _ in range(4):
        reference.forward()
        batches.append({name: reference.blobs[name].data.copy() for name in reference.outputs})
    assert seen == [0, 1, 2, 3]
    assert [name for name, _, _ in score.outputs] == ["accuracy", "loss"]
    for name, mean, weight in score.outputs:
        expected = np.mean([b[name] for b in batches], axis=0, dtype=np.float64).ravel()
        np.testing.assert_allclose(mean, expected, rtol=1e-6)
        assert weight == (1.0 if name == "loss" else 0.0)
    assert score.loss == pytest.approx(float(np.mean([b["loss"] for b in batches])), rel=1e-6)
    assert len({float(b["loss"]) for b in batches}) == 4


def test_log_lines_are_worded_as_caffe_test():
    """`Batch i, <out> = v` per element; then `Loss: x` and `<out> = mean` with
    `(* w = w·mean loss)` for a loss output."""
    outputs = [("accuracy", np.array([0.5], np.float32), 0.0),
               ("loss", np.array([0.25], np.float32), 2.0),
               ("per_class", np.array([1, 0.125], np.float32), 0.0)]
    assert list(batch_lines(3, outputs)) == [
        "Batch 3, accuracy = 0.5", "Batch 3, loss = 0.25", "Batch 3, per_class = 1",
        "Batch 3, per_class = 0.125"]
    assert list(summary_lines(Score(2, 0.25, outputs))) == [
        "Loss: 0.25", "accuracy = 0.5", "loss = 0.25 (* 2 = 0.5 loss)", "per_class = 1",
        "per_class = 0.125"]


def test_no_batches_is_an_error():
    """Averaging over zero batches is refused with the flag to fix."""
    with pytest.raises(BrewnetError, match="--iterations 0"):
        score_net(_net(0), 0)
