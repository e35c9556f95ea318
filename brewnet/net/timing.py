"""Per-layer timing of a net (Caffe's ``caffe time``): after a warm-up forward/backward (the
caller's, so it can log it as Caffe does), ``iterations`` passes that time every layer's
forward and backward separately.

Shared by the ``brewnet time`` command (which words the report as Caffe's log) and
``python -m benchmarks.layers``, so a regression report quotes the figures the command
prints. Each layer runs exactly as in ``Net.forward_backward`` (reshape, forward, loss
weights; backward only where the net plans it); on a GPU every timed step ends with a device
synchronization so a layer is charged for its own kernels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import backend
from .net import Net


@dataclass
class LayerTiming:
    """One layer's average milliseconds per pass and the bytes it holds: its new tops (data
    and diff; an in-place top belongs to the layer that made it) and its parameters (data
    and diff). Scratch buffers (im2col columns) are not counted."""

    name: str
    type: str
    forward_ms: float = 0.0
    backward_ms: float = 0.0
    top_bytes: int = 0
    param_bytes: int = 0

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms

    @property
    def memory_bytes(self) -> int:
        return self.top_bytes + self.param_bytes


@dataclass
class NetTiming:
    """Averages over the timed iterations, in milliseconds, as ``caffe time`` reports them."""

    iterations: int
    layers: list[LayerTiming]
    iteration_ms: list[float] = field(default_factory=list)
    forward_ms: float = 0.0
    backward_ms: float = 0.0
    total_ms: float = 0.0  # wall time of all timed iterations

    @property
    def forward_backward_ms(self) -> float:
        return self.total_ms / max(self.iterations, 1)

    def share(self, layer: LayerTiming) -> float:
        """The layer's fraction of the summed forward and backward time of all layers."""
        whole = sum(t.total_ms for t in self.layers)
        return layer.total_ms / whole if whole else 0.0


def _nbytes(arrays: Iterable[Any]) -> int:
    return int(sum(a.nbytes for a in arrays))


def layer_memory(net: Net) -> list[tuple[int, int]]:
    """(top bytes, parameter bytes) per layer, data and diff both counted; a top that is one
    of the layer's bottoms (in place) counts for the layer that produced it."""
    out = []
    for step in net.plan.steps:
        new_tops = [t for t in step.tops if not any(t is b for b in step.bottoms)]
        out.append((_nbytes(a for t in new_tops for a in (t.data, t.diff)),
                    _nbytes(a for p in step.layer.blobs for a in (p.data, p.diff))))
    return out


def time_net(net: Net, iterations: int,
             on_iteration: Callable[[int, float], None] | None = None) -> NetTiming:
    """Time ``iterations`` forward/backward passes layer by layer; run one untimed pass first
    (``net.forward_loss(); net.backward()``) so first-call costs are not counted.

    ``on_iteration(j, ms)`` is called after each timed pass (1-based ``j``), for progress
    lines. Layers run in place on ``net``: its data layers advance as in training.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    sync = backend.synchronizer()
    steps = net.plan.steps
    timings = [LayerTiming(step.name, step.layer.type, top_bytes=tb, param_bytes=pb)
               for step, (tb, pb) in zip(steps, layer_memory(net), strict=True)]
    forward_s = [0.0] * len(steps)
    backward_s = [0.0] * len(steps)
    result = NetTiming(iterations, timings)
    clock = time.perf_counter
    started = [0.0]

    def start(_: int) -> None:
        started[0] = clock()

    def stop(into: list[float]) -> Callable[[int], None]:
        def record(i: int) -> None:
            sync()
            into[i] += clock() - started[0]
        return record

    start_all = clock()
    with net.hooked(before_forward=start, after_forward=stop(forward_s),
                    before_backward=start, after_backward=stop(backward_s)):
        for j in range(1, iterations + 1):
            start_iter = clock()
            net.forward_loss()
            mid = clock()
            net.backward()
            end = clock()
            result.forward_ms += (mid - start_iter) * 1e3
            result.backward_ms += (end - mid) * 1e3
            result.iteration_ms.append((end - start_iter) * 1e3)
            if on_iteration is not None:
                on_iteration(j, result.iteration_ms[-1])
    result.total_ms = (clock() - start_all) * 1e3
    result.forward_ms /= iterations
    result.backward_ms /= iterations
    for t, f, b in zip(timings, forward_s, backward_s, strict=True):
        t.forward_ms, t.backward_ms = f * 1e3 / iterations, b * 1e3 / iterations
    return result
