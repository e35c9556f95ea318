"""The parameter table (Caffe's ``Net::AppendParam``): which blobs the solver updates, with
which lr/decay multipliers, and which layers share a blob by ParamSpec ``name``.

Sharing: the first layer to use a name owns the blob; later users get the owner's blob
(``STRICT``: same shape) or a view of it under their own shape (``PERMISSIVE``: same count).
lr_mult/decay_mult set on both sides must agree; set only on a later user, they become the
owner's.
"""

from __future__ import annotations

from ..blob import Blob
from ..errors import NetError, ShapeError
from ..layers.base import Layer
from ..proto import caffe_pb2
from .plan import Learnable, ParamSlot


class ParamTable:
    """Builds ``slots`` (per step, per blob) and ``learnable`` as layers are appended."""

    def __init__(self, slots: list[list[ParamSlot]], learnable: list[Learnable]):
        self.slots, self.learnable = slots, learnable
        # ParamSpec.name -> the owner's slot and layer name
        self._first: dict[str, tuple[ParamSlot, str]] = {}
        self._set: dict[tuple[str, str], bool] = {}  # (name, field): the owner's spec set it

    def append(self, step: int, layer: Layer) -> None:
        """Add layer ``step``'s parameter blobs, sharing by name; sets the layer's
        ``param_propagate_down`` (lr_mult != 0)."""
        lp = layer.param
        if len(lp.param) > len(layer.blobs):
            raise NetError(f"has {len(lp.param)} `param` specs but {lp.type} has only "
                           f"{len(layer.blobs)} parameter blobs", layer=lp.name,
                           layer_type=lp.type, field="param")
        layer.param_propagate_down = []
        row: list[ParamSlot] = []
        for j in range(len(layer.blobs)):
            spec = lp.param[j] if j < len(lp.param) else caffe_pb2.ParamSpec()
            layer.param_propagate_down.append(spec.lr_mult != 0)
            name = spec.name
            display = name or str(j)
            if not name or name not in self._first:
                slot = ParamSlot(step, j, display, len(self.learnable), None)
                if name:
                    self._first[name] = (slot, lp.name)
                    for field in ("lr_mult", "decay_mult"):
                        self._set[(name, field)] = spec.HasField(field)
                row.append(slot)
                self.learnable.append(Learnable(layer.blobs[j], spec.lr_mult, spec.decay_mult))
                continue
            owner, owner_name = self._first[name]
            self._share(layer, j, spec, owner_name, self.learnable[owner.learnable])
            row.append(ParamSlot(step, j, display, owner.learnable, (owner.step, owner.index)))
        self.slots.append(row)

    def _share(self, layer: Layer, j: int, spec: caffe_pb2.ParamSpec, owner_name: str,
               learnable: Learnable) -> None:
        lp, name = layer.param, spec.name
        mine, theirs = layer.blobs[j], learnable.blob
        strict = spec.share_mode == caffe_pb2.ParamSpec.STRICT
        if (strict and theirs.shape != mine.shape) or theirs.count != mine.count:
            raise ShapeError(f"shares parameter '{name}' with layer '{owner_name}' but the "
                             f"shapes differ: {tuple(theirs.shape)} there, "
                             f"{tuple(mine.shape)} here", layer=lp.name, layer_type=lp.type,
                             field="param")
        for field in ("lr_mult", "decay_mult"):
            if not spec.HasField(field):
                continue
            value, current = getattr(spec, field), getattr(learnable, field)
            if self._set[(name, field)] and current != value:
                raise NetError(f"shared parameter '{name}' has {field} {value:g} here but "
                               f"{current:g} in its owner layer '{owner_name}'; make them "
                               "equal", layer=lp.name, layer_type=lp.type, field="param")
            setattr(learnable, field, value)
            self._set[(name, field)] = True
        if strict:
            layer.blobs[j] = theirs
        else:  # PERMISSIVE: the same values under this layer's own shape
            layer.blobs[j] = Blob.of_arrays(theirs.data.reshape(mine.data.shape),
                                            theirs.diff.reshape(mine.data.shape), theirs.xp)
