"""Where each construct of a prototxt sits (line and column), which protobuf's Python parser
does not record: a light pass over the text, after it has parsed, builds a tree of fields so
the compiler can say ``lenet.prototxt:57:3`` of the layer (or the ``bottom:`` line) at fault.

The pass trusts the text to be valid (it runs only on text that ``text_format`` accepted), so
it needs no error handling of its own; on anything odd it just records less.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field

# Whitespace, comments, quoted strings, punctuation, and any other run of characters (names,
# numbers such as -1.5e-3, enum values).
_TOKEN = re.compile(r"""\s+|\#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>\[\]:;,]"""
                    r"""|[^\s{}<>\[\]:;,"'\#]+""")
_OPEN, _CLOSE = "{<", "}>"


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


def _tokens(text: str) -> list[tuple[str, int, int]]:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    out = []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0].isspace() or tok[0] == "#":
            continue
        line = bisect.bisect_right(starts, m.start())
        out.append((tok, line, m.start() - starts[line - 1] + 1))
    return out


def parse_positions(text: str) -> Node:
    """The field tree of prototxt ``text``; the root node stands for the whole message."""
    root = Node("", 1, 1)
    stack = [root]
    toks = _tokens(text)
    i, n = 0, len(toks)
    while i < n:
        tok, line, col = toks[i]
        if tok in _CLOSE:
            if len(stack) > 1:
                stack.pop()
            i += 1
            continue
        if tok in ";,":
            i += 1
            continue
        if tok == "[":  # extension or Any type URL: [pkg.name]
            j = i
            while j < n and toks[j][0] != "]":
                j += 1
            tok = "".join(t for t, _, _ in toks[i:j + 1])
            i = j
        node = Node(tok, line, col)
        stack[-1].children.append(node)
        i += 1
        if i < n and toks[i][0] == ":":
            i += 1
        if i >= n:
            break
        nxt = toks[i][0]
        if nxt in _OPEN:
            stack.append(node)
            i += 1
        elif nxt == "[":  # a list value: skip to its closing bracket
            depth = 0
            while i < n:
                t = toks[i][0]
                depth += t in "[{<"
                depth -= t in "]}>"
                i += 1
                if depth == 0:
                    break
        elif nxt[0] in "\"'":  # adjacent strings concatenate
            node.value = nxt
            i += 1
            while i < n and toks[i][0][0] in "\"'":
                i += 1
        else:
            node.value = nxt
            i += 1
    return root


def read_positions(path: str | os.PathLike) -> Node | None:
    """The field tree of the prototxt file at ``path``, or None if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_positions(f.read())
    except (OSError, UnicodeDecodeError):
        return None


def layer_nodes(root: Node) -> list[Node]:
    """A net's top-level ``layer``/``layers`` blocks, in the order the parser numbers them."""
    return [c for c in root.children if c.name in ("layer", "layers")]
