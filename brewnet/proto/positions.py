"""Where each construct of a prototxt sits (line and column), which protobuf's Python parser
does not record: a light pass over the text builds a tree of fields so the compiler can say
``lenet.prototxt:57:3`` of the layer (or the ``bottom:`` line) at fault.

The pass runs before protobuf parses the text, so it streams: one token at a time, linear in
time, its memory bounded by the text's structure (a message's repeated scalar fields are
recorded up to ``MAX_RECORDED`` times: only the first occurrences are ever located). It
applies the limits protobuf would only meet after gigabytes (a shape of more than 32 axes,
a name of absurd length) as located ParseErrors; on anything else odd it just records less,
and protobuf's parse reports the fault.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import ParseError

# Newlines (counted for line numbers), other whitespace, comments, quoted strings (unrolled,
# so a long one costs no backtracking state), punctuation, and any other run of characters
# (names, numbers such as -1.5e-3, enum values).
_TOKEN = re.compile(r"""\n|[^\S\n]+|\#[^\n]*|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"""
                    r"""|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|[{}<>\[\]:;,]|[^\s{}<>\[\]:;,"'\#]+""")
_OPEN, _CLOSE = "{<", "}>"
MAX_AXES = 32  # Caffe's kMaxBlobAxes: a BlobShape holds at most this many ``dim`` fields
MAX_NAME = 4096  # characters in a layer, blob or type name; anything longer is a mistake
MAX_RECORDED = 4096  # occurrences of one scalar field per message kept in the tree
_NAMES = frozenset({"name", "type", "top", "bottom"})


@dataclass
class Node:
    """One field occurrence: its name, 1-based position, the raw text of a scalar value and,
    for a message, the fields inside it in document order."""

    name: str
    line: int
    col: int
    value: str | None = None
    children: list[Node] = field(default_factory=list)

    def all(self, name: str) -> list[Node]:
        """Every field called ``name`` directly inside this message, in order."""
        return [c for c in self.children if c.name == name]

    def find(self, name: str, index: int = 0) -> Node | None:
        """The ``index``-th field called ``name`` inside this message, or None."""
        found = self.all(name)
        return found[index] if 0 <= index < len(found) else None

    def text(self, name: str) -> str | None:
        """The unquoted value of scalar field ``name`` (its first occurrence), or None."""
        node = self.find(name)
        if node is None or node.value is None:
            return None
        return node.value[1:-1] if node.value[:1] in "\"'" else node.value


@dataclass(frozen=True)
class Where:
    """A construct's location, ready for ``BrewnetError.locate``."""

    file: str | None
    line: int
    col: int


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """Each token with its 1-based line and column, whitespace and comments left out."""
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok == "\n":
            line, line_start = line + 1, m.end()
        elif not (tok[0].isspace() or tok[0] == "#"):
            yield tok, line, m.start() - line_start + 1


class _Stream:
    """The tokens with one of lookahead (``head``; None at the end)."""

    def __init__(self, text: str):
        self._tokens = _tokens(text)
        self.head = next(self._tokens, None)

    def take(self) -> str:
        tok = self.head[0]
        self.head = next(self._tokens, None)
        return tok


def parse_positions(text: str, path: str | None = None) -> Node:
    """The field tree of prototxt ``text`` (read from ``path``, which errors name); the root
    node stands for the whole message. A shape of more than ``MAX_AXES`` dims or a name
    longer than ``MAX_NAME`` is a ParseError at its line and column."""
    root = Node("", 1, 1)
    stack = [root]
    seen: dict[tuple[int, str], int] = {}  # (id of message node, field name) -> occurrences
    s = _Stream(text)
    while s.head is not None:
        tok, line, col = s.head
        s.take()
        if tok in _CLOSE:
            if len(stack) > 1:
                stack.pop()
            continue
        if tok in ";,":
            continue
        if tok == "[":  # extension or Any type URL: [pkg.name]
            parts = [tok]
            while s.head is not None and parts[-1] != "]":
                parts.append(s.take())
            tok = "".join(parts)
        node = Node(tok, line, col)
        parent = stack[-1]
        key = (id(parent), tok)
        seen[key] = count = seen.get(key, 0) + 1
        if tok == "dim" and count > MAX_AXES:
            raise ParseError(f"a shape with more than {MAX_AXES} dims; Caffe's blobs have at "
                             f"most {MAX_AXES} axes", path, line, col)
        if s.head is not None and s.head[0] == ":":
            s.take()
        if s.head is None:
            parent.children.append(node)
            break
        nxt = s.head[0]
        if nxt in _OPEN:
            s.take()
            parent.children.append(node)
            stack.append(node)
            continue
        if nxt == "[":  # a list value: skip to its closing bracket
            depth = 0
            while s.head is not None:
                t = s.take()
                depth += t in "[{<"
                depth -= t in "]}>"
                if depth == 0:
                    break
        else:  # a scalar; adjacent strings concatenate
            node.value = s.take()
            while nxt[0] in "\"'" and s.head is not None and s.head[0][0] in "\"'":
                s.take()
            if tok in _NAMES and len(node.value) > MAX_NAME + 2:
                raise ParseError(f"the {tok} is {len(node.value) - 2:,} characters long; a "
                                 f"name has at most {MAX_NAME:,}", path, line, col)
        if count <= MAX_RECORDED:
            parent.children.append(node)
    return root


def read_positions(path: str | os.PathLike) -> Node | None:
    """The field tree of the prototxt file at ``path``, or None if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_positions(f.read(), os.fspath(path))
    except (OSError, UnicodeDecodeError):
        return None


def layer_nodes(root: Node) -> list[Node]:
    """A net's top-level ``layer``/``layers`` blocks, in the order the parser numbers them."""
    return [c for c in root.children if c.name in ("layer", "layers")]
