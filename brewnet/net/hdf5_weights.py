"""Weights as HDF5 (``.caffemodel.h5``), laid out as Caffe's Net::ToHDF5 so either side reads
the other's files: group ``data`` with one subgroup per layer holding float32 datasets ``"0"``,
``"1"``, ... (a parameter shared from an earlier layer is stored only under its owner), and,
with gradients, group ``diff`` likewise. h5py is optional (``pip install 'brewnet[hdf5]'``).

Files are built in memory and written with brewnet.fileio's atomic_write.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import to_numpy
from ..errors import ShapeError, WeightsError
from ..fileio import atomic_write
from ..log import log

if TYPE_CHECKING:
    from .plan import Plan


def is_hdf5_path(path: str | os.PathLike) -> bool:
    """Caffe chooses the HDF5 reader by the ``.h5`` suffix alone."""
    return os.fspath(path).endswith(".h5")


def require_h5py() -> Any:
    """The h5py module, or a WeightsError saying how to get it."""
    try:
        import h5py  # optional dependency, imported on use
    except ImportError:
        raise WeightsError("HDF5 snapshots need h5py: pip install 'brewnet[hdf5]' (or h5py), "
                          "or use snapshot_format: BINARYPROTO") from None
    return h5py


def write_h5(path: str, fill: Any) -> None:
    """Build an HDF5 file in memory with ``fill(h5file)`` and write it atomically."""
    h5py = require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    atomic_write(path, buffer.getvalue())


def save_hdf5_weights(plan: Plan, path: str | os.PathLike, write_diff: bool = False) -> None:
    """The net's parameters (and gradients if ``write_diff``) as a .caffemodel.h5 (Caffe's
    Net::ToHDF5; pycaffe's ``net.save_hdf5``). Only owners store values (Caffe's layout)."""

    def fill(f: Any) -> None:
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for step, slots in zip(plan.steps, plan.slots, strict=True):
            layer = step.layer
            layer_data = data.require_group(layer.name)
            layer_diff = diff.require_group(layer.name) if diff is not None else None
            for j, blob in enumerate(layer.blobs):
                if slots[j].owner is None:
                    layer_data.create_dataset(str(j), data=to_numpy(blob.data)
                                              .astype(np.float32, copy=False))
                if layer_diff is not None:  # every gradient, shared or not (Caffe)
                    layer_diff.create_dataset(str(j), data=to_numpy(blob.diff)
                                              .astype(np.float32, copy=False))

    write_h5(os.fspath(path), fill)


@contextmanager
def open_h5(path: str) -> Iterator[Any]:
    """The HDF5 file at ``path``, open for reading; any HDF5 failure while opening it or
    reading it in the ``with`` block (h5py raises OSError, RuntimeError, KeyError, ValueError
    or TypeError for damaged structures) becomes a WeightsError naming the file."""
    h5py = require_h5py()
    if not os.path.isfile(path):
        raise WeightsError("file not found", file=path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"not a readable HDF5 file ({e}); the file is damaged or "
                           "was not written as HDF5", file=path) from None
    try:
        with f:
            yield f
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(f"the HDF5 file is damaged ({type(e).__name__}: {e})",
                           file=path) from None


def datasets(group: Any) -> dict[str, Any]:
    h5py = require_h5py()
    return {k: v for k, v in group.items() if isinstance(v, h5py.Dataset)}


def _fits(stored: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Same shape, or the same up to leading 1s (Caffe's 4-axis legacy blobs)."""
    def strip(s: tuple[int, ...]) -> tuple[int, ...]:
        while s and s[0] == 1:
            s = s[1:]
        return s

    return stored == shape or strip(stored) == strip(shape)


def load_hdf5_weights(plan: Plan, path: str | os.PathLike) -> list[str]:
    """Copy a .caffemodel.h5 into ``net`` by layer name (Caffe's CopyTrainedLayersFromHDF5):
    only values, not gradients; a missing dataset is fine only for a shared parameter.
    Returns the names of source layers that matched nothing. Every dataset is read and
    checked before any is assigned, so a bad file leaves the net as it was."""
    path = os.fspath(path)
    by_name = {step.name: (step.layer, [slot.owner is None for slot in slots])
               for step, slots in zip(plan.steps, plan.slots, strict=True)}
    ignored: list[str] = []
    staged: list[tuple[Any, np.ndarray]] = []
    with open_h5(path) as f:
        if "data" not in f:
            raise WeightsError("no 'data' group; not a .caffemodel.h5 (for a "
                               ".solverstate.h5 pass it to resume, not as weights)", file=path)
        for name, group in _layer_groups(f["data"]):
            if name not in by_name:
                ignored.append(name)
                log.info(f"Ignoring source layer {name}")
                continue
            layer, own = by_name[name]
            stored = datasets(group)
            if len(stored) > len(layer.blobs):
                raise WeightsError(f"has {len(stored)} parameter blobs in the file but "
                                   f"{len(layer.blobs)} in this net; rename the layer to learn "
                                   "it from scratch", file=path, layer=name,
                                   layer_type=layer.type)
            for j, blob in enumerate(layer.blobs):
                key = str(j)
                if key not in stored:
                    if not own[j]:
                        continue  # shared: its owner's dataset carries the values
                    raise WeightsError(f"lacks parameter {j} (dataset data/{name}/{j}) in the "
                                       f"file; this net's layer has {len(layer.blobs)}",
                                       file=path, layer=name, layer_type=layer.type)
                values = _read_dataset(stored[key], path, layer, j)
                shape = tuple(blob.data.shape)
                if not _fits(values.shape, shape):
                    raise ShapeError(f"the weights have shape {values.shape} for "
                                     f"parameter {j} but this net needs {shape}; to learn "
                                     "this layer from scratch instead, rename it", file=path,
                                     layer=name, layer_type=layer.type)
                staged.append((blob, values.reshape(shape)))
    for blob, values in staged:
        blob.data[...] = blob.xp.asarray(values)
    return ignored


def _read_dataset(dataset: Any, path: str, layer: Any, j: int) -> np.ndarray:
    """Parameter ``j`` of ``layer`` as float32; a damaged or non-numeric dataset is a
    WeightsError naming the file and the layer."""
    try:
        return np.asarray(dataset[()], dtype=np.float32)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise WeightsError(f"parameter {j} cannot be read as numbers ({e}); the file is "
                           "damaged", file=path, layer=layer.name,
                           layer_type=layer.type) from None


def _layer_groups(data: Any) -> list[tuple[str, Any]]:
    """(layer name, group) for every layer group under ``data``, in file order; a layer named
    ``a/b`` (Caffe allows '/') is the nested group h5py made for it."""
    h5py = require_h5py()
    out: list[tuple[str, Any]] = []

    def walk(group: Any, prefix: str) -> None:
        for key, item in group.items():
            if not isinstance(item, h5py.Group):
                continue
            name = prefix + key
            if datasets(item) or not any(isinstance(v, h5py.Group) for v in item.values()):
                out.append((name, item))
            walk(item, name + "/")

    walk(data, "")
    return out
