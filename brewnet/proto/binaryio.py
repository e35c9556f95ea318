"""Binary protobuf files: ``.caffemodel`` (NetParameter), ``.solverstate`` (SolverState) and
``.binaryproto`` (BlobProto, e.g. a mean image). A file that does not decode raises
WeightsError naming the file; a half-parsed message is never returned.
"""

from __future__ import annotations

import os
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from ..errors import WeightsError
from ..fileio import atomic_write
from . import caffe_pb2
from .upgrade import upgrade_net

M = TypeVar("M", bound=Message)


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def read_binary(path: str | os.PathLike, message_cls_or_instance: type[M] | M) -> M:
    """Decode a binary protobuf file into a new message of the given class (or the given one).

    Caffe read these with a 2 GB limit; python protobuf (upb) has no smaller one, so large
    .caffemodel files (VGG's is ~550 MB) decode whole.
    """
    path = os.fspath(path)
    if isinstance(message_cls_or_instance, Message):
        message = message_cls_or_instance
    else:
        message = message_cls_or_instance()
    kind = message.DESCRIPTOR.name
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WeightsError(f"cannot open {kind} file: {e.strerror or e}", file=path) from None
    if not data:
        raise WeightsError(f"file is empty, expected a binary {kind}", file=path)
    try:
        message.ParseFromString(data)  # clears first, as C++ ParseFromArray does
    except DecodeError as e:
        message.Clear()  # leave no half-parsed contents behind
        hint = (" (it looks like text: prototxt files are read with read_text)"
                if _looks_like_text(data) else "")
        detail = str(e).rsplit(": ", 1)[-1]  # drop protobuf's "Error parsing message ..."
        raise WeightsError(f"truncated or corrupted binary {kind} "
                           f"({len(data)} bytes; {detail}){hint}", file=path) from None
    bad = _non_text_field(message)
    if bad is not None:
        message.Clear()
        raise WeightsError(f"corrupted binary {kind}: the text field '{bad}' holds "
                           "bytes that are not UTF-8", file=path)
    return message


def _non_text_field(message: Message, prefix: str = "") -> str | None:
    """The dotted name of the first string field that decoded to bytes (proto2 does not
    check UTF-8 while parsing, and python then hands back ``bytes``), or None."""
    for field, value in message.ListFields():
        if field.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE):
            continue  # never list a repeated number field: weights hold millions
        values = value if field.is_repeated else [value]
        name = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            if any(isinstance(v, bytes) for v in values):
                return name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for i, v in enumerate(values):
                found = _non_text_field(v, f"{name}[{i}]." if field.is_repeated else name + ".")
                if found is not None:
                    return found
    return None


def read_net_binary(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """A .caffemodel, upgraded from legacy forms (V1 layers) as Caffe's
    ReadNetParamsFromBinaryFileOrDie does, so old model-zoo weights load by layer name."""
    path = os.fspath(path)
    return upgrade_net(read_binary(path, caffe_pb2.NetParameter), path)


def write_binary(path: str | os.PathLike, message: Message) -> None:
    """Serialize ``message`` to ``path`` atomically (a crash leaves the old file or the new)."""
    atomic_write(path, message.SerializeToString())
