"""pycaffe's views of a net (``blobs``, ``params``, ``layer_dict``, ``_blob_names``,
``_bottom_ids``, ...) and Caffe's per-layer vectors (``bottom_vecs``, ``learnable_params``,
``params_lr``, ...), all derived from the plan: the one place that turns step records into the
names and lists existing pycaffe code reads."""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property

from ..blob import Blob
from ..errors import BrewnetError
from ..layers.base import Layer
from ..proto import caffe_pb2
from .plan import Plan


class PlanViews:
    """Mixed into Net, which provides ``plan``; a plan does not change after compiling, so
    the lists are built once."""

    plan: Plan

    # -- what the compiler produced -------------------------------------------------------
    @property
    def blobs(self) -> OrderedDict[str, Blob]:
        """Blob name → Blob, in creation order (split tops included)."""
        return self.plan.blobs

    @property
    def inputs(self) -> list[str]:
        return self.plan.inputs

    @property
    def outputs(self) -> list[str]:
        return self.plan.outputs

    @property
    def param_def(self) -> caffe_pb2.NetParameter:
        """The NetParameter that compiled: filtered by the NetState, Splits inserted."""
        return self.plan.param_def

    @property
    def force_backward(self) -> bool:
        return self.plan.param_def.force_backward

    @property
    def problems(self) -> list[BrewnetError]:
        return self.plan.problems

    @property
    def warnings(self) -> list[BrewnetError]:
        return self.plan.warnings

    # -- Caffe's per-layer and per-parameter vectors --------------------------------------
    @cached_property
    def layers(self) -> list[Layer]:
        return self.plan.layers

    @cached_property
    def _layer_names(self) -> list[str]:
        return [s.name for s in self.plan.steps]

    @cached_property
    def bottom_vecs(self) -> list[list[Blob]]:
        return [s.bottoms for s in self.plan.steps]

    @cached_property
    def top_vecs(self) -> list[list[Blob]]:
        return [s.tops for s in self.plan.steps]

    @property
    def layer_need_backward(self) -> list[bool]:
        return [s.need_backward for s in self.plan.steps]

    @property
    def bottom_need_backward(self) -> list[list[bool]]:
        return [s.bottom_need_backward for s in self.plan.steps]

    @cached_property
    def learnable_params(self) -> list[Blob]:
        """Each parameter the solver updates once (a shared blob appears under its owner)."""
        return [p.blob for p in self.plan.learnable]

    @cached_property
    def params_lr(self) -> list[float]:
        return [p.lr_mult for p in self.plan.learnable]

    @cached_property
    def params_weight_decay(self) -> list[float]:
        return [p.decay_mult for p in self.plan.learnable]

    # -- pycaffe's dictionaries by layer name ---------------------------------------------
    @property
    def params(self) -> OrderedDict[str, list[Blob]]:
        """Layer name → its parameter blobs, for layers that have any."""
        return OrderedDict((s.name, s.layer.blobs) for s in self.plan.steps if s.layer.blobs)

    @property
    def layer_dict(self) -> OrderedDict[str, Layer]:
        return OrderedDict((s.name, s.layer) for s in self.plan.steps)

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, s.top_names) for s in self.plan.steps)

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, s.bottom_names) for s in self.plan.steps)

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        weights: OrderedDict[str, float] = OrderedDict((n, 0.0) for n in self.plan.blobs)
        for step in self.plan.steps:
            for name, w in zip(step.top_names, step.loss_weights, strict=True):
                if name in weights:  # a later in-place top overwrites, as Caffe's blob ids
                    weights[name] = w
        return weights

    # -- raw accessors by index, as pycaffe's bindings: blob indices count every blob of
    # ``blobs`` (split tops included); a loss layer's unnamed automatic top has none.
    @property
    def _blob_names(self) -> list[str]:
        return list(self.plan.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self.plan.blobs.values())

    @property
    def _inputs(self) -> list[int]:
        """Blob indices of ``inputs``."""
        return self._ids(self.plan.inputs)

    @property
    def _outputs(self) -> list[int]:
        """Blob indices of ``outputs``."""
        return self._ids(self.plan.outputs)

    def _ids(self, names: list[str]) -> list[int]:
        index = {name: k for k, name in enumerate(self.plan.blobs)}
        return [index[n] for n in names if n in index]

    def _bottom_ids(self, i: int) -> list[int]:
        """Blob indices of layer ``i``'s bottoms."""
        return list(self.plan.steps[i].bottom_ids)

    def _top_ids(self, i: int) -> list[int]:
        """Blob indices of layer ``i``'s tops."""
        return [k for k in self.plan.steps[i].top_ids if k is not None]
