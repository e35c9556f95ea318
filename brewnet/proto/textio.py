"""Prototxt in and out: Caffe's text format parsed against the schema, with errors a person can act
on (``file:line:col: unknown field 'kernal_size' in ConvolutionParameter; did you mean ...``).

``read_net`` and ``read_solver`` also bring legacy definitions up to date, as Caffe's
``ReadNetParamsFromTextFileOrDie`` / ``ReadSolverParamsFromTextFileOrDie`` do.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from ..errors import ParseError, pycaffe_kind
from ..fileio import atomic_write
from . import caffe_pb2
from .binaryio import read_binary, read_net_binary, write_binary
from .positions import Node, parse_positions
from .upgrade import V1_LAYER_TYPES, upgrade_net, upgrade_solver

# The binary readers are re-exported so callers can take all file I/O from one module.
__all__ = ["parse_text", "read_binary", "read_net", "read_net_binary", "read_net_located",
           "read_solver", "read_solver_located", "read_text", "to_text", "write_binary",
           "write_text"]

M = TypeVar("M", bound=Message)

_PACKAGE = caffe_pb2.DESCRIPTOR.package + "."
# protobuf's own wording, in the order it is tried; each maps to a clearer sentence.
_POSITION = re.compile(r"^\d+:\d+ : ")
_ECHO = re.compile(r"^'.*?': ")
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')
_NO_ENUM_NAME = re.compile(r'Enum type "([\w.]+)" has no value named (\S+?)\.?$')
_NO_ENUM_NUMBER = re.compile(r'Enum type "([\w.]+)" has no value with number (-?\d+)')
_DUPLICATE = re.compile(r'Message type "([\w.]+)" should not have multiple "(\w+)" fields')
_NOT_STRING = re.compile(r"Expected string but found: '(.*)'")


def _short(full_name: str) -> str:
    """``brewnet.caffe.PoolingParameter.PoolMethod`` → ``PoolingParameter.PoolMethod``."""
    return full_name[len(_PACKAGE):] if full_name.startswith(_PACKAGE) else full_name


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    lower = [c for c in choices if c.lower() == word.lower() and c not in close]
    close = lower + close
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _humanize(raw: str, pool, echoed_line: str | None) -> str:
    """Rewrite protobuf's parser message into one plain sentence with a suggestion."""
    text = _POSITION.sub("", raw, count=1)
    # protobuf quotes the offending source line before its message; the position says enough.
    if echoed_line is not None and text.startswith(f"'{echoed_line}': "):
        text = text[len(echoed_line) + 4:]
    else:
        text = _ECHO.sub("", text, count=1)
    if m := _NO_FIELD.search(text):
        msg = pool.FindMessageTypeByName(m[1])
        names = [f.name for f in msg.fields]
        hint = _suggest(m[2], names)
        if not hint and len(names) <= 12:
            hint = f"; its fields are {', '.join(names)}"
        return f"unknown field '{m[2]}' in {_short(m[1])}{hint}"
    if m := _NO_ENUM_NAME.search(text):
        enum = pool.FindEnumTypeByName(m[1])
        names = [v.name for v in enum.values]
        return (f"unknown value '{m[2]}' for {_short(m[1])}{_suggest(m[2], names)}"
                f" (valid: {', '.join(names)})")
    if m := _NO_ENUM_NUMBER.search(text):
        enum = pool.FindEnumTypeByName(m[1])
        valid = ", ".join(f"{v.name}={v.number}" for v in enum.values)
        return f"no value numbered {m[2]} in {_short(m[1])} (valid: {valid})"
    if m := _DUPLICATE.search(text):
        return (f"field '{m[2]}' of {_short(m[1])} is given more than once "
                "but holds a single value")
    if m := _NOT_STRING.search(text):
        hint = ""
        if m[1] in caffe_pb2.V1LayerParameter.LayerType.keys():
            v2 = V1_LAYER_TYPES[caffe_pb2.V1LayerParameter.LayerType.Value(m[1])]
            hint = f'; in a \'layer\' block the type is a quoted string: type: "{v2}"'
        return f"expected a quoted string but found {m[1]}{hint}"
    return text.replace(_PACKAGE, "").rstrip(".")


def parse_text(text: str, message: M, path: str | None = None) -> M:
    """Parse prototxt ``text`` into ``message`` (cleared first); ParseError with file:line:col."""
    message.Clear()  # as C++ TextFormat::Parse; python's Parse would merge into old contents
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        line = e.GetLine()
        lines = text.split("\n")
        echoed = lines[line - 1] if line is not None and 0 < line <= len(lines) else None
        raise ParseError(_humanize(str(e), message.DESCRIPTOR.file.pool, echoed), path,
                         line, e.GetColumn(), **_enclosing_layer(text, line, message)) from None
    return message


def _enclosing_layer(text: str, line: int | None, message: Message) -> dict[str, str | None]:
    """The name and type of the net layer whose block holds ``line``, for the error message."""
    if line is None or message.DESCRIPTOR.name != "NetParameter":
        return {}
    try:
        above = [c for c in parse_positions(text).children if c.line <= line]
    except ParseError:  # the text breaks a limit too: report protobuf's error, unlocated
        return {}
    if not above or above[-1].name not in ("layer", "layers"):
        return {}
    return {"layer": above[-1].text("name"), "layer_type": above[-1].text("type")}


def _instance(message_cls_or_instance: type[M] | M) -> M:
    if isinstance(message_cls_or_instance, Message):
        return message_cls_or_instance
    return message_cls_or_instance()


def read_text(path: str | os.PathLike, message_cls_or_instance: type[M] | M) -> M:
    """Read a prototxt file into a new message of the given class (or into the given message)."""
    path = os.fspath(path)
    return parse_text(_read_source(path), _instance(message_cls_or_instance), path)


def _read_source(path: str) -> str:
    """The text of the prototxt at ``path``; ParseError if it cannot be read as text."""
    # pycaffe's Net raises RuntimeError("Could not open file ...") (_caffe.cpp, CheckFile)
    unopened = pycaffe_kind(ParseError, RuntimeError)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise unopened(f"cannot open file: {e.strerror or e}", path) from None
    except ValueError:  # open() refuses a path with a NUL byte before asking the system
        raise unopened("cannot open file: the path holds a NUL byte", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("not a text prototxt (the file holds binary data; a .caffemodel or "
                         ".binaryproto is read with read_binary)", path) from None
    return text


def read_net(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """A net prototxt, upgraded from legacy forms (V1 layers, input fields) to current Caffe."""
    return read_net_located(path)[0]


def read_net_located(path: str | os.PathLike) -> tuple[caffe_pb2.NetParameter, Node]:
    """``read_net``, with where each construct of the file sits (for located errors): the
    file is opened and parsed once. The positions come first: they refuse a huge shape or
    name before protobuf's parser spends gigabytes on it."""
    path = os.fspath(path)
    text = _read_source(path)
    layout = parse_positions(text, path)
    param = parse_text(text, caffe_pb2.NetParameter(), path)
    try:
        return upgrade_net(param, path), layout
    except ParseError as e:  # the legacy fields at fault: locate the first one named
        words = set(re.findall(r"\w+", e.message))
        at = next((c for c in layout.children if c.name in words), None)
        raise e.locate(line=at.line if at else None, col=at.col if at else None) from None


def read_solver(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """A solver prototxt, upgraded (``solver_type`` enum → ``type`` string, inline nets)."""
    return read_solver_located(path)[0]


def read_solver_located(path: str | os.PathLike) -> tuple[caffe_pb2.SolverParameter, Node]:
    """``read_solver``, with where each field of the file sits: opened and parsed once."""
    path = os.fspath(path)
    text = _read_source(path)
    layout = parse_positions(text, path)
    param = parse_text(text, caffe_pb2.SolverParameter(), path)
    return upgrade_solver(param, path), layout


def to_text(message: Message) -> str:
    """Prototxt text for ``message`` in Caffe's layout (two-space indents, one field a line)."""
    return text_format.MessageToString(message, as_utf8=True)


def write_text(path: str | os.PathLike, message: Message) -> None:
    """Write ``message`` as prototxt, atomically."""
    atomic_write(path, to_text(message).encode("utf-8"))
