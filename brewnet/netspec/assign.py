"""Python values into protobuf fields, the way pycaffe's ``assign_proto`` does it: a list fills a
repeated field, a dict fills a message, a scalar given to a repeated field becomes ``[scalar]``.
Every mistake raises NetError naming the layer type and the field.
"""

from __future__ import annotations

import difflib
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..errors import NetError
from ..proto import caffe_pb2


def param_name_dict() -> dict[str, str]:
    """Layer type → stem of its ``*_param`` field (``"InnerProduct"`` → ``"inner_product"``),
    from LayerParameter's fields by reflection, as pycaffe's function of the same name."""
    out = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name.removesuffix("Parameter")
            out[type_name] = field.name.removesuffix("_param")
    return out


def suggest(word: str, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def assign_proto(proto: Message, name: str, value: Any, where: str = "") -> None:
    """Set field ``name`` of ``proto`` from a Python value (list, dict, message or scalar).

    ``where`` prefixes error messages (e.g. ``"Convolution layer: "``).
    """
    desc = proto.DESCRIPTOR
    field = desc.fields_by_name.get(name)
    path = f"{desc.name}.{name}"
    if field is None:
        raise NetError(f"{where}{desc.name} has no field '{name}'"
                       f"{suggest(name, desc.fields_by_name)}")
    if field.is_repeated:
        items = value if isinstance(value, (list, tuple)) else [value]
        container = getattr(proto, name)
        for item in items:
            if field.message_type is not None:
                _fill(container.add(), item, path, where)
            else:
                _append(container, field, item, path, where)
    elif field.message_type is not None:
        _fill(getattr(proto, name), value, path, where)
    else:
        try:
            setattr(proto, name, _scalar(field, value, path, where))
        except (TypeError, ValueError) as e:
            raise NetError(f"{where}cannot set {path} to {value!r}: {e}") from None


def _append(container, field: FieldDescriptor, item: Any, path: str, where: str) -> None:
    try:
        container.append(_scalar(field, item, path, where))
    except (TypeError, ValueError) as e:
        raise NetError(f"{where}cannot add {item!r} to {path}: {e}") from None


def _fill(message: Message, value: Any, path: str, where: str) -> None:
    """A sub-message from a dict (recursively) or a ready-made message of the right type."""
    if isinstance(value, Message):
        if value.DESCRIPTOR is not message.DESCRIPTOR:
            raise NetError(f"{where}{path} expects a {message.DESCRIPTOR.name}, "
                           f"got a {value.DESCRIPTOR.name}")
        message.CopyFrom(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            assign_proto(message, key, item, where)
    else:
        raise NetError(f"{where}{path} is a {message.DESCRIPTOR.name} message; give a dict "
                       f"of its fields, not {value!r}")


def _scalar(field: FieldDescriptor, value: Any, path: str, where: str) -> Any:
    """NumPy scalars become Python ones; enum names become their numbers."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if field.enum_type is not None and isinstance(value, str):
        names = field.enum_type.values_by_name
        if value not in names:
            raise NetError(f"{where}{path} has no value '{value}'{suggest(value, names)} "
                           f"(valid: {', '.join(names)})")
        return names[value].number
    return value
