"""brewnet's error hierarchy: every error names what is at fault and, where it can, the fix.

Errors are raised where the fact is known (the parser knows file:line:col, the compiler knows
the layer and blob, the data layer knows the path) and are caught once, in the CLI, which
prints ``str(error)`` as one line.
"""

from __future__ import annotations


class BrewnetError(Exception):
    """Base of every error brewnet raises on purpose."""


class ParseError(BrewnetError):
    """A prototxt or binary file that does not parse against the schema.

    ``str()`` reads ``file:line:col: message`` when the position is known.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 col: int | None = None):
        self.message, self.path, self.line, self.col = message, path, line, col
        where = path or "<string>"
        if line is not None:
            where += f":{line}"
            if col is not None:
                where += f":{col}"
        super().__init__(f"{where}: {message}")


class NetError(BrewnetError):
    """A net that cannot be compiled or run: names the layer (and blob) at fault."""

    def __init__(self, message: str, layer: str | None = None, layer_type: str | None = None,
                 blob: str | None = None):
        self.message, self.layer, self.layer_type, self.blob = message, layer, layer_type, blob
        prefix = ""
        if layer is not None:
            prefix = f"layer '{layer}'" + (f" ({layer_type})" if layer_type else "") + ": "
        super().__init__(prefix + message)


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
