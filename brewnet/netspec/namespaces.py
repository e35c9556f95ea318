"""pycaffe's ``L`` and ``P``: any attribute of ``layers`` is a layer constructor and any
attribute of ``params`` is a parameter message's enum namespace, found by name at call time,
so every layer type and enum in the schema is reachable without code per layer.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from ..proto import caffe_pb2
from .assign import suggest
from .spec import Function, Top


class Layers:
    """``layers.Convolution(bottom, num_output=8)`` → a Top; a tuple of Tops when ``ntop>1``;
    the Function itself when ``ntop=0``. The type name is not checked here: the net compiler
    knows which types are registered (Python layers included)."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("_"):
            raise AttributeError(type_name)

        def layer_fn(*bottoms: Top, **params: Any) -> Top | tuple[Top, ...] | Function:
            fn = Function(type_name, bottoms, params)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        layer_fn.__name__ = layer_fn.__qualname__ = type_name
        layer_fn.__doc__ = f"A {type_name} layer over the given bottoms (NetSpec)."
        return layer_fn


class _Enums:
    """The enum values of one schema message: ``params.Pooling.MAX``."""

    def __init__(self, holder: Any, label: str):
        self._holder, self._label = holder, label

    def __getattr__(self, value_name: str) -> int:
        if value_name.startswith("_"):
            raise AttributeError(value_name)
        names = self._value_names()
        if value_name in names or value_name in self._enum_type_names():
            return getattr(self._holder, value_name)
        raise AttributeError(f"{self._label} has no enum value '{value_name}'"
                             f"{suggest(value_name, names)} (valid: {', '.join(names)})")

    def _value_names(self) -> list[str]:
        if isinstance(self._holder, type) and issubclass(self._holder, Message):
            return [v.name for e in self._holder.DESCRIPTOR.enum_types for v in e.values]
        return list(self._holder.keys())

    def _enum_type_names(self) -> list[str]:
        if isinstance(self._holder, type) and issubclass(self._holder, Message):
            return [e.name for e in self._holder.DESCRIPTOR.enum_types]
        return []

    def __dir__(self):
        return self._value_names()


class Parameters:
    """``params.X.NAME`` is enum value NAME of message ``XParameter`` (or of schema enum ``X``,
    e.g. ``params.Phase.TEST``)."""

    def __getattr__(self, name: str) -> _Enums:
        if name.startswith("_"):
            raise AttributeError(name)
        for candidate in (f"{name}Parameter", name):
            holder = getattr(caffe_pb2, candidate, None)
            if holder is not None:
                return _Enums(holder, candidate)
        known = [m.removesuffix("Parameter") for m in caffe_pb2.DESCRIPTOR.message_types_by_name]
        raise AttributeError(f"the Caffe schema has no message '{name}Parameter'"
                             f"{suggest(name, known)}")


layers = Layers()
params = Parameters()
