"""Running chains of layers as one step: fixed per-channel layers folded into the convolution
before them (inference), and BatchNorm with batch statistics with its Scale and ReLU
(training).

A Convolution followed, in place on its top, by BatchNorm with fixed statistics (TEST phase
or ``use_global_stats``), Scale and/or ReLU — Caffe's ResNet and MobileNet layout, and
CaffeNet's conv + ReLU — runs as one step: the convolution writes
``act(conv·a + b)`` in a single pass over its top (``ConvolutionLayer.forward_affine``),
with ``a`` and ``b`` composed from the absorbed layers' ``channel_affine()`` at every forward,
so values assigned through ``net.params`` between forwards count and nothing is cached. The
absorbed steps are skipped.

It cannot be observed, by construction: only whole in-place chains fold, so the blob holds
the unfused value after the chain (up to rounding) and no other blob or parameter changes;
no step of a chain carries a loss weight; a forward whose range ends inside a chain, and any
forward with per-layer callbacks (pycaffe's ``before_forward``/``after_forward``,
``debug_info``, ``brewnet time``'s per-layer timing), run the layers one by one as written.
Backward needs what the absorbed layers keep from their own forward, so in a TRAIN net, or
with ``force_backward``, a chain folds only where no gradient runs through it. A TEST net
with a loss (a train_val net's test phase: Caffe marks its layers as needing backward, though
only a pycaffe caller ever runs it) folds those chains too, as ``replay`` chains: the net
runs a replay chain's layers one by one again, from the convolution's unchanged bottom,
before a backward that reaches it (``Net._backward``), so its backward sees what an unfused
forward would have left. The convolution's bottom still holds what it read then: the
compiler refuses a layer in place on a blob that another layer has read (Split's rule).
``BREWNET_FUSE=0`` or ``Net(..., fuse=False)`` turns it off.

A ReLU in place on the top of an Eltwise sum (ResNet's shortcut add) runs with it as the
Eltwise layer's ``forward_activated``, one pass over the blobs (:class:`FusedActivation`), in
every phase: neither layer keeps anything from its forward (the sum's backward reads only the
top's gradient, the ReLU's its output, which the blob holds either way), so a backward after
the fused forward runs the two layers one by one with nothing to replay. So does a ReLU in
place on a convolution's top where a gradient runs through them (training: CaffeNet's,
SqueezeNet's and GoogLeNet's every convolution), as the convolution's epilogue: its backward
reads only its bottom and the top's gradient, and the epilogue computes the ReLU's value
bit for bit.

In training, a BatchNorm with batch statistics, the per-channel Scale in place on its top
and a ReLU in place after that (:class:`FusedNormalization`; ResNet's and MobileNet's every
BatchNorm) run as one forward step, ``BatchNorm.forward_affine`` (one reading pass
for the statistics, one writing x̂ and ``act(x̂·γ + β)``), and, after a forward that
ran so, as one backward step, ``BatchNorm.backward_affine`` (one pass for the Scale's two
sums, which times γ are BatchNorm's two means too, one writing the bottom's gradient). The
fused forward leaves each layer what its own forward leaves for backward (BatchNorm's x̂ and
divisor, the Scale's input, the ReLU's output in the blob), so no replay is needed: whatever
runs the steps one by one afterwards (a backward with callbacks or whose range covers part
of the chain, a backward after a forward that started inside the chain) computes what it
computes unfused. Blob values and BatchNorm's statistics are the unfused ones bit for bit;
gradients equal them to float32 rounding (BatchNorm's means are γ times the Scale's float64
sums, not sums of the rounded products γ·dz), and the blob's diff holds what the unfused
layers leave there. Such a chain folds in any phase where BatchNorm uses batch statistics,
with the compiled kernels only, and when no step carries a loss weight; its backward folds
in every combination of gradients the compiler produces (frozen Scale parameters, a
BatchNorm whose bottom needs none) except a ReLU that passes none on (``propagate_down:
false``), where the steps run one by one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import kernels
from ..layers.base import Layer
from ..proto import caffe_pb2
from .plan import Plan, Step

ENV = "BREWNET_FUSE"


def fusion_wanted(fuse: bool | None) -> bool:
    """``fuse`` when given, else whether the environment leaves fusion on (BREWNET_FUSE
    unset or anything but 0)."""
    if fuse is not None:
        return fuse
    return os.environ.get(ENV, "1").strip() != "0"


@dataclass(frozen=True)
class FusedChain:
    """Steps ``head..last``: a convolution, then ``affines`` (layers with a per-channel
    ``y = x·a + b``) and, with ``slope`` not None, a ReLU with that negative slope.
    ``replay``: a step of it runs backward, so a backward reaching it must first run the
    steps one by one (:meth:`replay_steps`)."""

    head: int
    last: int
    affines: tuple[Layer, ...]
    slope: np.float32 | None
    replay: bool = False
    folds_backward: ClassVar[bool] = False  # a backward runs the steps one by one

    def run(self, steps: list[Step]) -> None:
        """The chain's forward, as the convolution's one step."""
        step = steps[self.head]
        scale: Any = None
        shift: Any = None
        for layer in self.affines:  # y = (x·scale + shift)·a + b
            a, b = layer.channel_affine()
            scale, shift = (a, b) if scale is None else (scale * a, shift * a + b)
        step.layer.reshape_as_needed(step.bottoms, step.tops)
        step.layer.forward_affine(step.bottoms, step.tops, scale, shift, self.slope)

    def replay_steps(self, steps: list[Step]) -> None:
        """The chain's forward again, layer by layer, leaving each layer what its backward
        reads (a chain carries no loss, so nothing is returned)."""
        for step in steps[self.head:self.last + 1]:
            step.layer.run_forward(step.bottoms, step.tops)


@dataclass(frozen=True)
class FusedActivation:
    """Steps ``head..last``: a layer that runs an in-place ReLU with negative ``slope`` after
    itself in one pass (``forward_activated``: an Eltwise sum, a convolution), then that
    ReLU. It leaves what the two forwards leave, so a backward runs the steps one by one
    without a replay."""

    head: int
    last: int
    slope: np.float32
    replay: ClassVar[bool] = False
    folds_backward: ClassVar[bool] = False

    def run(self, steps: list[Step]) -> None:
        step = steps[self.head]
        step.layer.reshape_as_needed(step.bottoms, step.tops)
        step.layer.forward_activated(step.bottoms, step.tops, self.slope)


@dataclass(frozen=True)
class FusedNormalization:
    """Steps ``head..last``: a BatchNorm with batch statistics, a per-channel Scale in place
    on its top and, with ``slope`` not None, a ReLU in place after it. Forward leaves every
    layer what its own forward leaves for backward, so it never needs a replay.
    ``folds_backward``: the chain's backward runs as one step (else its steps run one by one),
    with ``dx`` (the BatchNorm's bottom gets a gradient) and ``dtop`` (what the unfused
    layers leave in the top's diff, :meth:`BatchNorm.backward_affine`)."""

    head: int
    last: int
    slope: np.float32 | None
    folds_backward: bool
    dx: bool
    dtop: str | None
    replay: bool = False

    def run(self, steps: list[Step]) -> None:
        """The chain's forward, as the BatchNorm's one step."""
        for step in steps[self.head:self.last + 1]:
            step.layer.reshape_as_needed(step.bottoms, step.tops)
        head, scale = steps[self.head], steps[self.head + 1].layer
        a, b = scale.channel_blobs()
        x_hat = head.layer.forward_affine(head.bottoms, head.tops, a.data,
                                          None if b is None else b.data, self.slope)
        scale.keep_input(x_hat)

    def run_backward(self, steps: list[Step]) -> None:
        """The chain's backward, as one step (after a fused forward)."""
        head, scale = steps[self.head], steps[self.head + 1].layer
        (a, b), learns = scale.channel_blobs(), scale.param_propagate_down
        head.layer.backward_affine(head.tops, [self.dx], head.bottoms, a.data,
                                   a.diff if learns[0] else None,
                                   b.diff if b is not None and learns[1] else None,
                                   self.slope, self.dtop)


Chain = FusedChain | FusedActivation | FusedNormalization


def fused_chains(plan: Plan) -> dict[int, Chain]:
    """The chains of ``plan`` that fold, by the index of their first step."""
    chains: dict[int, Chain] = {}
    replayable = plan.phase == caffe_pb2.TEST and not plan.param_def.force_backward
    i = 0
    while i < len(plan.steps):
        chain = (_chain_at(plan.steps, i, replayable)
                 or _activation_at(plan.steps, i)
                 or _normalization_at(plan.steps, i))
        if chain is None:
            i += 1
        else:
            chains[i] = chain
            i = chain.last + 1
    return chains


def _backward_runs(step: Step) -> bool:
    return step.need_backward or any(step.bottom_need_backward)


def _foldable(step: Step, replayable: bool) -> bool:
    """Whether the step may run inside a fused chain: it carries no loss, and either no
    backward runs through it or the chain can be replayed before one does."""
    return not any(step.loss_weights) and (replayable or not _backward_runs(step))


def _in_place_on(step: Step, blob: Any, replayable: bool) -> bool:
    return (len(step.bottoms) == 1 and len(step.tops) == 1 and step.bottoms[0] is blob
            and step.tops[0] is blob and _foldable(step, replayable))


def _chain_at(steps: list[Step], i: int, replayable: bool) -> FusedChain | None:
    head = steps[i]
    channels = getattr(head.layer, "epilogue_channels", None)
    if (channels is None or len(head.bottoms) != 1 or len(head.tops) != 1
            or head.tops[0] is head.bottoms[0] or not _foldable(head, replayable)):
        return None
    channels = channels()
    blob = head.tops[0]
    affines: list[Layer] = []
    slope = None
    j = i + 1
    while (channels is not None and j < len(steps)
           and _in_place_on(steps[j], blob, replayable)):
        layer = steps[j].layer
        affine = getattr(layer, "channel_affine", None)
        pair = affine() if affine is not None else None
        if pair is not None and all(tuple(v.shape) == (channels,) for v in pair):
            affines.append(layer)
            j += 1
            continue
        activation = getattr(layer, "activation_slope", None)
        if activation is not None:
            slope = np.float32(activation())
            j += 1
        break  # an activation ends the chain
    if j == i + 1:
        return None
    replay = any(_backward_runs(step) for step in steps[i:j])
    return FusedChain(i, j - 1, tuple(affines), slope, replay)


def _activation_at(steps: list[Step], i: int) -> FusedActivation | None:
    head = steps[i]
    takes = getattr(head.layer, "takes_activation", None)
    if (takes is None or not takes() or len(head.tops) != 1 or any(head.loss_weights)
            or i + 1 >= len(steps) or not _in_place_on(steps[i + 1], head.tops[0], True)):
        return None
    activation = getattr(steps[i + 1].layer, "activation_slope", None)
    if activation is None:
        return None
    return FusedActivation(i, i + 1, np.float32(activation()))


def _normalization_at(steps: list[Step], i: int) -> FusedNormalization | None:
    head = steps[i]
    batch = getattr(head.layer, "normalizes_batch", None)
    if (batch is None or not batch() or len(head.bottoms) != 1 or len(head.tops) != 1
            or any(head.loss_weights) or not kernels.enabled(head.bottoms[0].xp)):
        return None
    blob = head.tops[0]
    if i + 1 >= len(steps) or not _in_place_on(steps[i + 1], blob, True):
        return None
    scale = steps[i + 1]
    channel_blobs = getattr(scale.layer, "channel_blobs", None)
    if channel_blobs is None or channel_blobs() is None:  # not one factor per channel
        return None
    last, slope = i + 1, None
    if i + 2 < len(steps) and _in_place_on(steps[i + 2], blob, True):
        activation = getattr(steps[i + 2].layer, "activation_slope", None)
        if activation is not None:
            last, slope = i + 2, np.float32(activation())
    dx = head.need_backward and head.bottom_need_backward[0]
    scaled = scale.bottom_need_backward[0]
    relu = steps[last] if slope is not None else None
    # The backward folds where the unfused one has the shape the kernel computes: the ReLU
    # passes the gradient on, the Scale runs, and the BatchNorm, if it writes its bottom's
    # gradient, reads the Scale's. Anything else (propagate_down false on the ReLU or the
    # Scale) runs the steps one by one.
    folds = (scale.need_backward and (scaled or not dx)
             and (relu is None or (relu.need_backward and relu.bottom_need_backward[0])))
    if dx and head.bottoms[0] is blob:
        dtop = None  # overwritten by the BatchNorm's bottom gradient
    else:
        dtop = "scaled" if scaled else ("masked" if relu is not None else None)
    return FusedNormalization(i, last, slope, folds, dx, dtop)
