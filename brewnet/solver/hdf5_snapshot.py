"""HDF5 snapshots (``snapshot_format: HDF5``), laid out as Caffe's so either side reads the
other's files; h5py is an optional dependency (``pip install 'brewnet[hdf5]'``).

``<prefix>_iter_<N>.caffemodel.h5``: the weights as brewnet.net.hdf5_weights writes them (with
gradients when ``snapshot_diff``).

``<prefix>_iter_<N>.solverstate.h5``: scalar int datasets ``iter`` and ``current_step``, a
scalar string ``learned_net`` and group ``history`` with datasets ``"0"``, ``"1"``, ... in the
update rule's order.

Files are built in memory and written with brewnet.fileio's atomic_write, so a crash leaves the
previous snapshot whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..errors import WeightsError
from ..log import log
from ..net.hdf5_weights import (
    datasets,
    open_h5,
    require_h5py,
    save_hdf5_weights,
    write_h5,
)

H5_MODEL_EXT = ".caffemodel.h5"
H5_STATE_EXT = ".solverstate.h5"


def _string_dataset(h5py: Any, group: Any, name: str, value: str) -> None:
    """A scalar fixed-length, NUL-terminated string, as HDF5's H5LTmake_dataset_string."""
    data = value.encode()
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(data) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dset = h5py.h5d.create(group.id, name.encode(), tid, space)
    dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(data + b"\0", dtype=f"S{len(data) + 1}"),
               mtype=tid)


def write_model_hdf5(net: Any, filename: str, write_diff: bool) -> None:
    """The snapshot's .caffemodel.h5, logged as Caffe logs it."""
    log.info(f"Snapshotting to HDF5 file {filename}")
    save_hdf5_weights(net.plan, filename, write_diff)


def write_state_hdf5(filename: str, iter: int, learned_net: str, current_step: int,
                     history: Sequence[Any]) -> None:
    """A .solverstate.h5; ``history`` arrays in the update rule's order."""
    log.info(f"Snapshotting solver state to HDF5 file {filename}")
    h5py = require_h5py()

    def fill(f: Any) -> None:
        f.create_dataset("iter", data=np.int32(iter))
        _string_dataset(h5py, f, "learned_net", learned_net)
        f.create_dataset("current_step", data=np.int32(current_step))
        group = f.create_group("history")
        for i, h in enumerate(history):
            group.create_dataset(str(i), data=to_numpy(h).astype(np.float32, copy=False))

    write_h5(filename, fill)


@dataclass
class HDF5State:
    """The fields of a .solverstate.h5."""

    iter: int
    learned_net: str | None
    current_step: int
    history: list[np.ndarray]


def _scalar(f: Any, name: str, path: str) -> int:
    try:
        return int(np.asarray(f[name][()]).reshape(()))
    except (KeyError, TypeError, ValueError):
        raise WeightsError(f"no integer dataset '{name}'; not a solver state written "
                           f"by a snapshot (pass the {H5_STATE_EXT} file)", file=path) from None


def read_state_hdf5(path: str | os.PathLike) -> HDF5State:
    """Read a .solverstate.h5; a .caffemodel.h5 given instead says which file is needed."""
    path = os.fspath(path)
    with open_h5(path) as f:
        if "iter" not in f and "data" in f:
            stem = path[: -len(H5_MODEL_EXT)] if path.endswith(H5_MODEL_EXT) else path
            raise WeightsError(f"this is a .caffemodel.h5 (weights only); resuming "
                               f"needs the {H5_STATE_EXT} written beside it (e.g. "
                               f"{stem}{H5_STATE_EXT}); to start from these weights instead, "
                               "pass them as weights (-weights)", file=path)
        it = _scalar(f, "iter", path)
        learned = None
        if "learned_net" in f:
            raw = f["learned_net"][()]
            raw = raw.tobytes() if isinstance(raw, np.ndarray) else raw
            learned = (raw.split(b"\0", 1)[0].decode() if isinstance(raw, bytes)
                       else str(raw))
        step = _scalar(f, "current_step", path) if "current_step" in f else 0
        history: list[np.ndarray] = []
        if "history" in f:
            stored = datasets(f["history"])
            for i in range(len(stored)):
                if str(i) not in stored:
                    raise WeightsError(f"history has {len(stored)} datasets but no "
                                       f"'{i}'; the file is damaged", file=path)
                history.append(np.asarray(stored[str(i)][()], dtype=np.float32))
    return HDF5State(it, learned, step, history)
