"""The compiled form of a net, the compiler's output: an ordered list of step records and the
parameter table, which the runtime executes and every other reader (weight I/O, lint, checks,
ONNX export, draw, timing, debug output, pycaffe's views) reads through these public fields.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..blob import Blob
from ..errors import BrewnetError
from ..layers.base import Layer
from ..proto import caffe_pb2
from ..proto.positions import Node

if TYPE_CHECKING:
    from .fusion import Chain


@dataclass(eq=False)
class Step:
    """One layer in execution order: what it reads and writes (by name, by blob id in
    ``Plan.blobs`` — None for a loss layer's unnamed automatic top — and by object), where it
    came from (its prototxt block and its index in the NetParameter compiled; None for a
    Split the compiler added), and what backward must compute."""

    layer: Layer
    bottom_names: list[str]
    top_names: list[str]
    bottom_ids: list[int]
    top_ids: list[int | None]
    bottoms: list[Blob]
    tops: list[Blob]
    origin: Node | None
    source_index: int | None
    need_backward: bool = False
    bottom_need_backward: list[bool] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def loss_weights(self) -> list[float]:
        """One weight per top (set by the layer's set_up)."""
        return self.layer.loss_weights


@dataclass(eq=False)
class Learnable:
    """A parameter the solver updates, with Caffe's per-parameter multipliers; a blob shared
    by ParamSpec name is one Learnable however many layers use it."""

    blob: Blob
    lr_mult: float
    decay_mult: float


@dataclass(frozen=True)
class ParamSlot:
    """Parameter blob ``index`` of step ``step``: its display name (ParamSpec ``name``, else
    the index), the Learnable it updates, and ``owner``, the (step, index) whose values it
    shares, or None when it owns them (Caffe stores only owners' values)."""

    step: int
    index: int
    display_name: str
    learnable: int
    owner: tuple[int, int] | None


@dataclass(eq=False)
class Plan:
    """A net compiled for one NetState. ``param_def`` is the NetParameter that compiled
    (filtered, Splits inserted); ``problems`` the compile errors a collecting compile kept;
    ``warnings`` what is legal but suspicious (net/lint.py), extended by weight loading;
    ``fused`` the chains of steps a forward may run as one (net/fusion.py), by first step."""

    name: str
    phase: int
    file: str | None
    param_def: caffe_pb2.NetParameter
    steps: list[Step] = field(default_factory=list)
    blobs: OrderedDict[str, Blob] = field(default_factory=OrderedDict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    slots: list[list[ParamSlot]] = field(default_factory=list)  # per step, per blob
    learnable: list[Learnable] = field(default_factory=list)
    problems: list[BrewnetError] = field(default_factory=list)
    warnings: list[BrewnetError] = field(default_factory=list)
    fused: dict[int, Chain] = field(default_factory=dict)

    @property
    def layers(self) -> list[Layer]:
        return [s.layer for s in self.steps]

    def close(self) -> None:
        """Stop the layers' background threads (data prefetch)."""
        for s in self.steps:
            s.layer.close()
