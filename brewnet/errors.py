"""brewnet's error hierarchy: every error names what is at fault and, where it can, the fix.

Errors are raised where the fact is known (the parser knows file:line:col, the compiler knows
the layer and blob, the data layer knows the path) and are caught once, in the CLI, which
prints ``str(error)`` as one line.
"""

from __future__ import annotations

import functools


class BrewnetError(Exception):
    """Base of every error brewnet raises on purpose.

    Where the fact is known, the error carries the location at fault as attributes: ``file``,
    ``line`` and ``col`` (1-based, of the prototxt construct), ``layer`` and ``layer_type``,
    ``blob``, and ``field``: the layer's field at fault as a dotted path
    (``"data_param.batch_size"``, ``"top"``), which the compiler turns into a line without
    reading the message; each is None when unknown. ``str()`` is one line:
    ``file:line:col: layer 'name' (Type): message``. ``message`` is the text without location.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 col: int | None = None, layer: str | None = None,
                 layer_type: str | None = None, blob: str | None = None,
                 field: str | None = None):
        self.message = message
        self.file = None if file is None else str(file)
        self.line, self.col = line, col
        self.layer, self.layer_type, self.blob = layer, layer_type, blob
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None or self.line is not None:
            where = self.file or "<string>"
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        who = ""
        if self.layer is not None:
            who = f"layer '{self.layer}'" + (f" ({self.layer_type})" if self.layer_type else "")
            who += ": "
        return where + who + self.message

    def locate(self, *, file: str | None = None, line: int | None = None,
               col: int | None = None) -> BrewnetError:
        """Fill in a location the raiser did not know (the compiler knows which prototxt line
        a layer came from; the layer that raised does not). Known fields are kept."""
        if self.file is None and file is not None:
            self.file = str(file)
        if self.line is None and line is not None:
            self.line, self.col = line, col
        self.args = (self._render(),)
        return self

    @property
    def path(self) -> str | None:
        """The file at fault (pycaffe-era name for ``file``)."""
        return self.file

    def __str__(self) -> str:
        return self._render()


class ParseError(BrewnetError):
    """A prototxt or binary file that does not parse against the schema.

    ``str()`` reads ``file:line:col: message`` when the position is known.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 col: int | None = None, **where: str | None):
        super().__init__(message, file=path, line=line, col=col, **where)


class NetError(BrewnetError):
    """A net that cannot be compiled or run: names the layer (and blob) at fault."""

    def __init__(self, message: str, layer: str | None = None, layer_type: str | None = None,
                 blob: str | None = None, field: str | None = None, **where: int | str | None):
        super().__init__(message, layer=layer, layer_type=layer_type, blob=blob, field=field,
                         **where)


class ShapeError(NetError):
    """Shapes that disagree (bottoms of a layer, weights against the net)."""


class WeightsError(BrewnetError):
    """A .caffemodel/.solverstate/.binaryproto that is unreadable or does not fit the net."""


class DataError(BrewnetError):
    """A data source (LMDB, MNIST files) that is missing or malformed: names the path."""


class SolverError(BrewnetError):
    """A solver definition or training state that cannot be used."""


class DivergenceError(SolverError):
    """Training produced a non-finite loss or parameter: names the iteration and the first
    layer whose output went non-finite."""


@functools.cache
def pycaffe_kind(kind: type[BrewnetError], builtin: type[Exception]) -> type[BrewnetError]:
    """``kind`` that is also ``builtin``, for the places where pycaffe raises a built-in
    exception: code written for pycaffe (``except TypeError``, ``assertRaises(ValueError)``)
    keeps catching it, and brewnet code catching ``kind`` does too. One class per pair."""
    return type(f"{kind.__name__}({builtin.__name__})", (kind, builtin),
                {"__module__": __name__, "__doc__": kind.__doc__})
