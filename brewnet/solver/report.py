"""The solver's progress lines, worded and formatted exactly as Caffe's so that parse_log.py,
parse_log.sh and plotting scripts written for Caffe read brewnet's logs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


def num(x: Any) -> str:
    """A number as C++ ``ostream << float`` prints it: 6 significant digits, ``%g`` style
    (``0.01``, ``1e-05``, ``2.30259``, ``100000``, ``1e+06``, ``nan``, ``inf``)."""
    if isinstance(x, int | np.integer):
        return str(int(x))
    return f"{float(x):g}"


def output_lines(kind: str, outputs: Iterable[tuple[str, Any, float]]) -> Iterator[str]:
    """``    <kind> net output #i: <blob> = <v>[ (* <w> = <w·v> loss)]``, one line per element.

    ``outputs`` holds (blob name, values, loss weight); values are flattened and numbered
    across blobs, as Caffe does. ``w·v`` is computed in float32, Caffe's Dtype.
    """
    index = 0
    for name, values, weight in outputs:
        for v in np.asarray(values, dtype=np.float32).ravel():
            yield f"    {kind} net output #{index}: {value_text(name, v, weight)}"
            index += 1


def value_text(name: str, value: Any, weight: float = 0.0) -> str:
    """``<name> = <v>``, with `` (* <w> = <w·v> loss)`` for a loss output (weight ≠ 0): the
    body of Caffe's output lines and of ``caffe test``'s averaged lines."""
    w, v = np.float32(weight), np.float32(value)
    tail = f" (* {num(w)} = {num(w * v)} loss)" if w else ""
    return f"{name} = {num(v)}{tail}"


def short_float(x: Any) -> float | None:
    """A float32 value as the shortest decimal that reads back to it (0.1, not
    0.10000000149011612), for machine-readable reports; None for NaN and infinities, which
    JSON cannot spell."""
    v = np.float32(x)
    return float(str(v)) if np.isfinite(v) else None


def output_values(outputs: Iterable[tuple[str, Any, float]]) -> dict[str, Any]:
    """{blob name: value} for machine-readable reports (``--log-json``): a float for a
    one-element output, a list of floats otherwise (see ``short_float``)."""
    values = {}
    for name, data, _ in outputs:
        flat = [short_float(v) for v in np.asarray(data, dtype=np.float32).ravel()]
        values[name] = flat[0] if len(flat) == 1 else flat
    return values
