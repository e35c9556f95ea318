"""pycaffe's whole-dataset passes, ``Net.forward_all`` and ``Net.forward_backward_all``: N
rows of arrays cut into batches of the net's batch size, the last one zero-padded, and the
results joined with the padding dropped."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..errors import NetError, ShapeError


def _host_copy(a: Any) -> np.ndarray:
    """A NumPy copy of a blob array (the blob's own array is overwritten by the next pass)."""
    return a.copy() if isinstance(a, np.ndarray) else to_numpy(a)


def _gather(parts: list[np.ndarray], size: int | None, num: int | None) -> np.ndarray:
    """Join one result over batches: end to end with the padding rows dropped when every
    part is batch-shaped, else stacked one per batch; a single unbatched pass as it is."""
    if num is None:
        return parts[0]
    if all(p.ndim and p.shape[0] == size for p in parts):
        return np.concatenate(parts)[:num]
    return np.stack(parts)


class WholeDatasetPasses:
    """The batched passes, mixed into :class:`brewnet.net.Net` (they use only its public
    ``forward``/``backward``, ``inputs``/``outputs``, ``blobs``, ``name`` and its blob-name
    check ``_known_blobs``)."""

    def forward_all(self, blobs: Sequence[str] | None = None,
                    **kwargs: Any) -> dict[str, np.ndarray]:
        """Forward N rows of input arrays (by input name) in batches of the input blobs' batch
        size, the last one zero-padded; return the outputs (and ``blobs``) for the N rows as
        NumPy copies. Batch-shaped results are joined and the padding dropped; any other (a
        0-d loss) is stacked, one entry per batch. Without arrays: one forward pass."""
        batches, num, size = self._batched(kwargs, "forward_all")
        results: dict[str, list[np.ndarray]] = {}
        for batch in batches or [{}]:
            for name, value in self.forward(blobs, **batch).items():
                results.setdefault(name, []).append(_host_copy(value))
        return {name: _gather(parts, size, num) for name, parts in results.items()}

    def forward_backward_all(self, blobs: Sequence[str] | None = None,
                             diffs: Sequence[str] | None = None, **kwargs: Any
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """forward_all and backward over the same batches: keyword arrays named after inputs
        feed the data, those named after outputs feed the output diffs. Returns (outputs and
        ``blobs``, input diffs and ``diffs``), padding dropped as in forward_all."""
        unknown = sorted(set(kwargs) - set(self.inputs) - set(self.outputs))
        if unknown:
            raise NetError(f"forward_backward_all: {unknown} name neither inputs "
                           f"{self.inputs} nor outputs {self.outputs} of net '{self.name}'")
        fwd, num_f, size_f = self._batched(
            {k: v for k, v in kwargs.items() if k in self.inputs}, "forward_backward_all")
        bwd, num_b, size_b = self._batched(
            {k: v for k, v in kwargs.items() if k in self.outputs}, "forward_backward_all")
        if num_f is not None and num_b is not None and num_f != num_b:
            raise ShapeError(f"forward_backward_all: the input arrays have {num_f} rows but "
                             f"the output diff arrays {num_b}; give both the same N")
        outs: dict[str, list[np.ndarray]] = {}
        grads: dict[str, list[np.ndarray]] = {}
        for fb, bb in list(zip_longest(fwd, bwd, fillvalue={})) or [({}, {})]:
            for name, value in self.forward(blobs, **fb).items():
                outs.setdefault(name, []).append(_host_copy(value))
            for name, value in self.backward(diffs, **bb).items():
                grads.setdefault(name, []).append(_host_copy(value))
        num = num_f if num_f is not None else num_b
        size = size_f if size_f is not None else size_b
        return ({name: _gather(parts, size, num) for name, parts in outs.items()},
                {name: _gather(parts, size, num) for name, parts in grads.items()})

    def _batched(self, arrays: dict[str, Any], caller: str
                 ) -> tuple[list[dict[str, np.ndarray]], int | None, int | None]:
        """(batches, N, batch size) for whole-dataset arrays named after blobs: slices of the
        blobs' batch size, the last zero-padded (pycaffe's ``_batch``); ([], None, None) for
        no arrays."""
        if not arrays:
            return [], None, None
        self._known_blobs(list(arrays))
        arrays = {k: np.asarray(to_numpy(v)) for k, v in arrays.items()}
        rows = {k: (a.shape[0] if a.ndim else 0) for k, a in arrays.items()}
        sizes = {k: (self.blobs[k].shape or [0])[0] for k in arrays}
        if len(set(rows.values())) != 1:
            raise ShapeError(f"{caller}: the arrays have different numbers of rows {rows}; "
                             "give every array the same N")
        if len(set(sizes.values())) != 1 or 0 in sizes.values():
            raise ShapeError(f"{caller}: the blobs {sorted(arrays)} need one common batch size "
                             f"(first axis), but have {sizes}")
        num, size = rows.popitem()[1], sizes.popitem()[1]
        batches = []
        for start in range(0, num, size):
            batch = {}
            for name, a in arrays.items():
                part = a[start:start + size]
                if len(part) < size:
                    pad = np.zeros((size - len(part), *part.shape[1:]), dtype=part.dtype)
                    part = np.concatenate([part, pad])
                batch[name] = part
            batches.append(batch)
        return batches, num, size
