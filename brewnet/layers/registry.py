"""Layer types by name: the compiler asks here and never imports a concrete layer."""

from __future__ import annotations

import difflib
from typing import TypeVar

from .base import Layer

_LAYERS: dict[str, type[Layer]] = {}

L = TypeVar("L", bound=type[Layer])


def register(cls: L) -> L:
    """Class decorator: make ``cls`` available under ``cls.type``."""
    if not cls.type:
        raise TypeError(f"{cls.__name__} has no type name")
    if cls.type in _LAYERS and _LAYERS[cls.type] is not cls:
        raise TypeError(f"layer type '{cls.type}' registered twice")
    _LAYERS[cls.type] = cls
    return cls


def _load_builtin() -> None:
    # Importing the package imports every layer family, each of which registers itself.
    from .. import layers  # noqa: F401


def layer_class(type_name: str) -> type[Layer]:
    """The class registered under ``type_name``; KeyError carries the closest known names."""
    _load_builtin()
    try:
        return _LAYERS[type_name]
    except KeyError:
        close = difflib.get_close_matches(type_name, _LAYERS, n=3, cutoff=0.5)
        lower = [t for t in _LAYERS if t.lower() == type_name.lower()]
        hint = ", ".join(f"'{t}'" for t in dict.fromkeys(lower + close))
        raise KeyError(f"unknown layer type '{type_name}'"
                       + (f"; did you mean {hint}?" if hint else "")) from None


def layer_type_list() -> list[str]:
    """Registered type names, sorted (pycaffe's layer_type_list)."""
    _load_builtin()
    return sorted(_LAYERS)


def _known(type_name: str) -> type[Layer] | None:
    _load_builtin()
    return _LAYERS.get(type_name)


def param_fields(type_name: str) -> tuple[str, ...]:
    """The ``*_param`` messages layers of ``type_name`` read, their own first; none for a type
    brewnet does not implement (NetSpec may still write one for Caffe)."""
    cls = _known(type_name)
    return cls.param_fields if cls else ()


def keeps_coordinates(type_name: str) -> bool:
    """Whether a ``type_name`` layer's top positions are its bottoms' positions; false for a
    type brewnet does not implement, whose geometry it cannot know."""
    cls = _known(type_name)
    return cls is not None and cls.keeps_coordinates


def is_data_source(type_name: str) -> bool:
    """Whether ``type_name`` layers read their tops from outside the net (a deploy net takes
    them as inputs); false for a type brewnet does not implement."""
    cls = _known(type_name)
    return cls is not None and cls.is_data_source
