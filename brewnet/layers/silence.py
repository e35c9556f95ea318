"""Silence: consumes blobs nobody else reads, so the net does not report them as outputs."""

from __future__ import annotations

from ..blob import Blob
from .base import Layer
from .registry import register


@register
class Silence(Layer):
    """No tops and no arithmetic; backward gives the bottoms a zero gradient (they feed
    nothing that has a loss)."""

    type = "Silence"
    min_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        pass

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        pass

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        for want, b in zip(propagate_down, bottom, strict=True):
            if want:
                b.diff[...] = 0
