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
        w = np.float32(weight)
        for v in np.asarray(values, dtype=np.float32).ravel():
            tail = f" (* {num(w)} = {num(w * v)} loss)" if w else ""
            yield f"    {kind} net output #{index}: {name} = {num(v)}{tail}"
            index += 1
