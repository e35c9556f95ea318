"""Folding fixed per-channel layers into the convolution before them, for inference.

A Convolution followed, in place on its top, by BatchNorm with fixed statistics (TEST phase
or ``use_global_stats``), Scale and/or ReLU — Caffe's ResNet and MobileNet layout, and
CaffeNet's conv + ReLU — runs as one step: the convolution writes
``act(conv·a + b)`` in a single pass over its top (``ConvolutionLayer.forward_affine``),
with ``a`` and ``b`` composed from the absorbed layers' ``channel_affine()`` at every forward,
so values assigned through ``net.params`` between forwards count and nothing is cached. The
absorbed steps are skipped.

It cannot be observed, by construction: only whole in-place chains fold, so the blob holds
the unfused value after the chain (up to rounding) and no other blob or parameter changes;
no step of a chain runs backward (no ``force_backward``, nothing learns through it) or
carries a loss weight; a forward whose range ends inside a chain, and any forward with
per-layer callbacks (pycaffe's ``before_forward``/``after_forward``, ``debug_info``,
``brewnet time``'s per-layer timing), run the layers one by one as written.
``BREWNET_FUSE=0`` or ``Net(..., fuse=False)`` turns it off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..layers.base import Layer
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
    ``y = x·a + b``) and, with ``slope`` not None, a ReLU with that negative slope."""

    head: int
    last: int
    affines: tuple[Layer, ...]
    slope: np.float32 | None

    def run(self, steps: list[Step]) -> None:
        """The chain's forward, as the convolution's one step."""
        step = steps[self.head]
        scale: Any = None
        shift: Any = None
        for layer in self.affines:  # y = (x·scale + shift)·a + b
            a, b = layer.channel_affine()
            scale, shift = (a, b) if scale is None else (scale * a, shift * a + b)
        step.layer.reshape(step.bottoms, step.tops)
        step.layer.forward_affine(step.bottoms, step.tops, scale, shift, self.slope)


def fused_chains(plan: Plan) -> dict[int, FusedChain]:
    """The chains of ``plan`` that fold, by the index of their convolution."""
    chains: dict[int, FusedChain] = {}
    i = 0
    while i < len(plan.steps):
        chain = _chain_at(plan.steps, i)
        if chain is None:
            i += 1
        else:
            chains[i] = chain
            i = chain.last + 1
    return chains


def _quiet(step: Step) -> bool:
    """Whether nothing but the step's forward value is ever asked of it."""
    return not (step.need_backward or any(step.bottom_need_backward)
                or any(step.loss_weights))


def _in_place_on(step: Step, blob: Any) -> bool:
    return (len(step.bottoms) == 1 and len(step.tops) == 1 and step.bottoms[0] is blob
            and step.tops[0] is blob and _quiet(step))


def _chain_at(steps: list[Step], i: int) -> FusedChain | None:
    head = steps[i]
    channels = getattr(head.layer, "epilogue_channels", None)
    if (channels is None or len(head.bottoms) != 1 or len(head.tops) != 1
            or head.tops[0] is head.bottoms[0] or not _quiet(head)):
        return None
    channels = channels()
    blob = head.tops[0]
    affines: list[Layer] = []
    slope = None
    j = i + 1
    while channels is not None and j < len(steps) and _in_place_on(steps[j], blob):
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
    return FusedChain(i, j - 1, tuple(affines), slope)
