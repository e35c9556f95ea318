"""Nets written as Python: ``Top`` (one output of a layer), ``Function`` (one layer call) and
``NetSpec`` (names for tops), serialized to a NetParameter with pycaffe's naming rules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import NetError, pycaffe_kind
from ..layers.registry import param_fields
from ..proto import caffe_pb2
from .assign import assign_proto, suggest

_LAYER_FIELDS = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name


class Top:
    """Output ``n`` of the layer call ``fn``; pass it to further layers as a bottom."""

    def __init__(self, fn: Function, n: int):
        self.fn, self.n = fn, n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The net that computes this top (its layer and every layer upstream)."""
        return to_proto(self)

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)

    def __repr__(self) -> str:
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """One layer: its type, its bottoms and its keyword parameters.

    ``ntop`` (default 1) is the number of tops; ``in_place=True`` writes the top over the
    first bottom's blob (ReLU, Dropout). Keywords are checked against the schema here, so a
    misspelt one fails at the call that wrote it.
    """

    def __init__(self, type_name: str, inputs: tuple, params: dict[str, Any]):
        self.type_name = type_name
        for i, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                fix = ("unpack the tuple of Tops a layer with ntop>1 returns (a, b = ...)"
                       if isinstance(bottom, tuple) else
                       "pass a layer's output (a Top such as n.data), not its name or value")
                # pycaffe's text (net_spec.py, Function.__init__), then the fix
                raise pycaffe_kind(NetError, TypeError)(
                    f"{type_name} input {i} is not a Top (type is {type(bottom)}); {fix}")
        self.inputs = tuple(inputs)
        params = dict(params)
        self.ntop = int(params.pop("ntop", 1))
        self.in_place = bool(params.pop("in_place", False))
        if self.in_place and len(self.inputs) < self.ntop:
            raise NetError(f"{type_name} layer: in_place=True needs a bottom for each of its "
                           f"{self.ntop} top(s) to overwrite, got {len(self.inputs)}")
        self.params = params
        self.tops = tuple(Top(self, n) for n in range(self.ntop))
        self._fill_params(caffe_pb2.LayerParameter())  # fail now on a bad keyword

    def _fill_params(self, layer: caffe_pb2.LayerParameter) -> None:
        """Route each keyword: ``*param`` keys to the layer, others to the type's own
        ``*_param`` message first (``<type>_param`` as a rule) and to the layer's own fields
        (``include``, ``loss_weight``) second."""
        where = f"{self.type_name} layer: "
        fields = param_fields(self.type_name)
        own = fields[0] if fields else None
        own_fields = getattr(layer, own).DESCRIPTOR.fields_by_name if own else {}
        for key, value in self.params.items():
            if key in own_fields and not key.endswith("param"):
                assign_proto(getattr(layer, own), key, value, where)
            elif key in _LAYER_FIELDS:
                assign_proto(layer, key, value, where)
            else:
                choices = list(own_fields) + list(_LAYER_FIELDS)
                holder = f"{own} or LayerParameter" if own else "LayerParameter"
                raise NetError(f"{where}unknown keyword '{key}' (not a field of {holder})"
                               f"{suggest(key, choices)}")

    def _get_name(self, names: dict, autonames: Counter) -> str:
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _get_top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            autonames[self.type_name] += 1
            names[top] = f"{self.type_name}{autonames[self.type_name]}"
        return names[top]

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        """Emit this layer after everything upstream of it (depth first, each layer once)."""
        if self in layers:
            return
        bottoms = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottoms.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name, bottom=bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom[:self.ntop])
        else:
            layer.top.extend(self._get_top_name(top, names, autonames) for top in self.tops)
        layer.name = self._get_name(names, autonames)
        self._fill_params(layer)
        layers[self] = layer

    def __repr__(self) -> str:
        return f"<Function {self.type_name} ({len(self.inputs)} bottoms, {self.ntop} tops)>"


def to_proto(*tops: Top) -> caffe_pb2.NetParameter:
    """The net computing ``tops``; layers and tops are auto-named ``<Type><k>``."""
    layers: dict[Function, caffe_pb2.LayerParameter] = {}
    autonames: Counter = Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    return caffe_pb2.NetParameter(layer=layers.values())


class NetSpec:
    """Named tops: ``n.conv1 = L.Convolution(n.data, ...)``; ``n.to_proto()`` names each layer
    and top after the attribute it was assigned to."""

    def __init__(self):
        super().__setattr__("tops", {})

    def __setattr__(self, name: str, value: Top | Function) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Top | Function:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top '{name}'"
                                 f"{suggest(name, self.tops)}") from None

    def __setitem__(self, key: str, value: Top | Function) -> None:
        self.tops[key] = value

    def __getitem__(self, key: str) -> Top | Function:
        return self.tops[key]

    def __delitem__(self, key: str) -> None:
        del self.tops[key]

    def __dir__(self):
        return list(super().__dir__()) + list(self.tops)

    def keys(self) -> list[str]:
        return list(self.tops)

    def vals(self) -> list[Top | Function]:
        return list(self.tops.values())

    def update(self, name: str, value: Top | Function) -> None:
        self.tops[name] = value

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The NetParameter holding every assigned top and all layers upstream of them."""
        for name, value in self.tops.items():
            if not isinstance(value, (Top, Function)):
                raise NetError(f"NetSpec.{name} holds a {type(value).__name__}, not a Top; "
                               "unpack layers with ntop>1: n.a, n.b = L.Slice(..., ntop=2)")
        names = {value: name for name, value in self.tops.items()}
        layers: dict[Function, caffe_pb2.LayerParameter] = {}
        autonames: Counter = Counter()
        for value in self.tops.values():
            value._to_proto(layers, names, autonames)
        return caffe_pb2.NetParameter(layer=layers.values())
