"""Blob: Caffe's unit of storage, a float32 array of values (data) and of gradients (diff).

Shapes are ``(N, C, H, W)`` for images but any number of axes (up to Caffe's 32) is allowed;
a scalar loss is a 0-d blob, as in pycaffe.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import count
from typing import Any

import numpy as np

from .backend import default_xp
from .errors import ShapeError, pycaffe_kind

MAX_AXES = 32
MAX_COUNT = 2**31 - 1  # Caffe counts values in an int

# A new value (``next`` is atomic) each time any blob gets arrays: created, reallocated by a
# reshape, sharing another's data, adopting an array. While it stands still no blob's
# ``arrays_key`` changed (short of assigning ``.shape`` on a blob's array in place, which
# nothing in brewnet does and Blob.reshape replaces), so a net's layers skip even comparing
# their blobs' keys (``Layer.reshape_as_needed``: 2-3 us a layer, 0.2 ms of a MobileNet v2
# forward at batch 1).
_EPOCHS = count(1)
_epoch = 0


def arrays_epoch() -> int:
    """The number that changes whenever any blob gets new arrays (see ``_EPOCHS``)."""
    return _epoch


def _arrays_changed() -> None:
    global _epoch
    _epoch = next(_EPOCHS)


def checked_shape(dims: Sequence[int]) -> tuple[int, ...]:
    """``dims`` as a shape, or a ShapeError: Caffe's Blob::Reshape allows at most 32 axes, no
    negative dimension and at most INT_MAX values."""
    shape = tuple(int(d) for d in dims)
    if len(shape) > MAX_AXES or any(d < 0 for d in shape):
        raise ShapeError(f"invalid blob shape {shape}: at most {MAX_AXES} axes, none negative")
    if math.prod(shape) > MAX_COUNT:
        raise ShapeError(f"blob shape {shape} holds {math.prod(shape)} values, more than "
                         f"Caffe's limit of {MAX_COUNT} (INT_MAX); check the sizes feeding it")
    return shape


class AllocationBudget:
    """Bytes the Blobs created or reshaped while it is ``active`` may hold (data and diff).
    Once they would exceed ``limit``, every later Blob gets zero-cost stand-ins of its shape
    (``allocated`` False) instead of arrays: the compiler builds a net under one, so a net
    that cannot fit is measured rather than allocated (brewnet.net.memory)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.exceeded = False
        self._held: dict[Blob, int] = {}

    def admit(self, blob: Blob, nbytes: int) -> bool:
        """Whether ``blob`` may allocate ``nbytes`` (replacing what it held)."""
        held = self._held.get(blob, 0)
        if self.exceeded or self.used - held + nbytes > self.limit:
            self.exceeded = True
            return False
        self.used += nbytes - held
        self._held[blob] = nbytes
        return True

    @contextmanager
    def active(self) -> Iterator[AllocationBudget]:
        """Apply the budget to the Blobs this thread allocates within the block."""
        token = _BUDGET.set(self)
        try:
            yield self
        finally:
            _BUDGET.reset(token)


_BUDGET: ContextVar[AllocationBudget | None] = ContextVar("brewnet_blob_budget", default=None)


class Blob:
    """A named pair of arrays of one shape; ``data`` and ``diff`` are the arrays themselves,
    so writes into them (``blob.data[...] = x``) land in the net."""

    __slots__ = ("_data", "_diff", "_xp")

    def __init__(self, shape: Sequence[int] = (), xp: Any = None):
        self._xp = xp if xp is not None else default_xp()
        self._data, self._diff = self._zeros(checked_shape(shape))
        _arrays_changed()

    @classmethod
    def of_arrays(cls, data: Any, diff: Any, xp: Any) -> Blob:
        """A blob holding ``data`` and ``diff`` themselves (views of another blob's arrays:
        parameters shared under another shape), no copy."""
        blob = cls.__new__(cls)
        blob._xp, blob._data, blob._diff = xp, data, diff
        _arrays_changed()
        return blob

    def _zeros(self, shape: tuple[int, ...]) -> tuple[Any, Any]:
        """Zeroed data and diff arrays of ``shape``, or, past an active AllocationBudget,
        writable stand-ins of that shape that hold one value each."""
        budget = _BUDGET.get()
        if budget is None or budget.admit(self, 2 * 4 * math.prod(shape)):
            return (self._xp.zeros(shape, dtype=np.float32),
                    self._xp.zeros(shape, dtype=np.float32))
        strides = (0,) * len(shape)
        return tuple(self._xp.lib.stride_tricks.as_strided(
            self._xp.zeros(1, dtype=np.float32), shape, strides) for _ in range(2))

    @property
    def allocated(self) -> bool:
        """False for the stand-in of a blob refused by an AllocationBudget."""
        return self._data.size <= 1 or any(self._data.strides)

    # -- arrays -------------------------------------------------------------------------
    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data[...] = value

    @property
    def diff(self) -> Any:
        return self._diff

    @diff.setter
    def diff(self, value: Any) -> None:
        self._diff[...] = value

    @property
    def xp(self) -> Any:
        return self._xp

    # -- shape --------------------------------------------------------------------------
    @property
    def shape(self) -> list[int]:
        """The shape as a list, as pycaffe returns it."""
        return list(self._data.shape)

    @property
    def count(self) -> int:
        return int(self._data.size)

    @property
    def num_axes(self) -> int:
        return self._data.ndim

    def _legacy(self, axis: int) -> int:
        if self._data.ndim > 4:
            raise ValueError(f"legacy accessors need at most 4 axes; this blob has shape "
                             f"{tuple(self._data.shape)}")
        # Caffe's LegacyShape: missing axes count as 1.
        return self._data.shape[axis] if axis < self._data.ndim else 1

    @property
    def num(self) -> int:
        return self._legacy(0)

    @property
    def channels(self) -> int:
        return self._legacy(1)

    @property
    def height(self) -> int:
        return self._legacy(2)

    @property
    def width(self) -> int:
        return self._legacy(3)

    def reshape(self, *dims: int | Sequence[int]) -> None:
        """Change the shape; the arrays are reallocated (zeroed) only when it changes.

        Accepts ``reshape(64, 1, 28, 28)`` (pycaffe) and ``reshape((64, 1, 28, 28))``. A
        dimension that is not an integer (2.5, "2") is a TypeError, as in pycaffe, rather
        than a size silently truncated.
        """
        if len(dims) == 1 and hasattr(dims[0], "__len__"):
            dims = tuple(dims[0])
        for d in dims:
            if not isinstance(d, int | np.integer):
                raise pycaffe_kind(ShapeError, TypeError)(
                    f"Blob.reshape{tuple(dims)}: dimension {d!r} is a {type(d).__name__}; "
                    "give whole numbers (int(...) a computed size first)")
        shape = checked_shape(dims)
        if shape != self._data.shape:
            self._data, self._diff = self._zeros(shape)
            _arrays_changed()

    def arrays_key(self) -> tuple:
        """Which arrays the blob holds now, and their shape: equal keys mean a layer's
        reshape would find the blob as it was (``Layer.reshape_as_needed``)."""
        return id(self._data), id(self._diff), self._data.shape

    def reshape_like(self, other: Blob) -> None:
        self.reshape(other._data.shape)

    def share_data(self, other: Blob) -> None:
        """Use ``other``'s data array (Caffe's ShareData); shapes must already agree."""
        if tuple(other._data.shape) != tuple(self._data.shape):
            raise ValueError(f"cannot share data of shape {tuple(other._data.shape)} with a "
                             f"blob of shape {tuple(self._data.shape)}")
        self._data = other._data
        _arrays_changed()
        budget = _BUDGET.get()
        if budget is not None:  # only the diff is this blob's own now
            budget.admit(self, 4 * math.prod(self._diff.shape))

    def adopt_data(self, array: Any) -> None:
        """Make ``array`` this blob's data without copying it (Caffe's set_cpu_data, with
        which a data layer hands its prefetched batch to its top); it must have the blob's
        shape, float32 and the blob's array type."""
        if (type(array) is not type(self._data) or array.dtype != np.float32
                or tuple(array.shape) != tuple(self._data.shape)):
            raise ValueError(f"cannot adopt a {type(array).__name__} {array.dtype} array of "
                             f"shape {tuple(array.shape)} as the data of a blob of shape "
                             f"{tuple(self._data.shape)}")
        self._data = array
        _arrays_changed()

    def __repr__(self) -> str:
        return f"Blob(shape={tuple(self._data.shape)})"
