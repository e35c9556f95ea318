"""Writing and restoring a solver's snapshots (Caffe's ``Solver::Snapshot`` and
``Restore``), in either format, with the data layers moved to where an uninterrupted run
would be. The file formats themselves live in snapshot.py and hdf5_snapshot.py. Mixed into
:class:`brewnet.solver.Solver`.

With several ranks (``comm``), every rank holds the same weights and history, so rank 0 alone
writes snapshots (atomically, as one process does) and reads them back: a restore broadcasts
what it read, and each rank then moves its data layers to the same global position.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import SolverError
from ..log import log
from ..net import Net
from ..net.hdf5_weights import is_hdf5_path
from ..parallel.comm import Communicator
from ..proto import caffe_pb2
from . import hdf5_snapshot as h5snap
from . import snapshot as snap


class Snapshots:
    """Needs the Solver's ``param``, ``net``, ``test_nets``, ``iter``, ``current_step`` and
    ``history`` and ``comm``."""

    comm: Communicator
    param: caffe_pb2.SolverParameter
    net: Net
    test_nets: list[Net]
    iter: int
    current_step: int
    history: list[Any]
    _last_snapshot: str | None

    def snapshot_filename(self, extension: str) -> str:
        return snap.snapshot_filename(self.param.snapshot_prefix, self.iter, extension)

    def snapshot(self) -> tuple[str, str]:
        """Write ``<prefix>_iter_<N>.caffemodel`` and ``.solverstate`` (``.caffemodel.h5`` and
        ``.solverstate.h5`` with ``snapshot_format: HDF5``); return both paths. Other ranks
        than 0 write nothing and return the paths rank 0 writes."""
        p = self.param
        hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
        model = self.snapshot_filename(h5snap.H5_MODEL_EXT if hdf5 else snap.MODEL_EXT)
        state = self.snapshot_filename(h5snap.H5_STATE_EXT if hdf5 else snap.STATE_EXT)
        if self.comm.rank != 0:
            return model, state
        if hdf5:
            with self._writing(model):
                h5snap.write_model_hdf5(self.net, model, p.snapshot_diff)
            with self._writing(state):
                h5snap.write_state_hdf5(state, self.iter, model, self.current_step, self.history)
        else:
            with self._writing(model):
                snap.write_model(self.net, model, p.snapshot_diff)
            with self._writing(state):
                snap.write_state(state, self.iter, model, self.current_step, self.history)
        self._last_snapshot = state
        return model, state

    @contextmanager
    def _writing(self, path: str) -> Iterator[None]:
        """An OSError writing ``path`` (disk full, RLIMIT_FSIZE: its text names no file) as a
        SolverError naming it and the snapshot a resumed run can still use (files are written
        atomically, so none is left half-written)."""
        try:
            yield
        except OSError as e:
            kept = (f"the last complete snapshot, {self._last_snapshot}, is intact (resume "
                    "with --snapshot)" if self._last_snapshot else "no earlier snapshot exists")
            raise SolverError(f"cannot write this snapshot file at iteration {self.iter}: "
                              f"{e.strerror or e}; {kept}; free space or raise the file size "
                              "limit", file=path) from None

    def restore(self, path: str | os.PathLike) -> None:
        """Resume from a .solverstate (or, by its ``.h5`` suffix, a .solverstate.h5): weights,
        iteration, schedule step and history, and every data layer advanced past the batches
        already consumed. With several ranks, rank 0 reads the file (it need not exist
        elsewhere) and broadcasts the weights, history, iteration and schedule step."""
        path = os.fspath(path)
        if self.comm.rank == 0:
            self._read_snapshot(path)
        if self.comm.size > 1:
            self._bcast_state()
        self._last_snapshot = path
        self._skip_consumed_batches()

    def _read_snapshot(self, path: str) -> None:
        if is_hdf5_path(path):
            h5state = h5snap.read_state_hdf5(path)
            history = snap.place_history(h5state.history, path, self.history)
            learned_net, it, step = h5state.learned_net, h5state.iter, h5state.current_step
        else:
            state = snap.read_state(path)
            history = snap.history_arrays(state, path, self.history)
            learned_net = state.learned_net if state.HasField("learned_net") else None
            it, step = state.iter, state.current_step
        if learned_net is not None:
            self.net.copy_from(snap.resolve_learned_net(learned_net, path))
        self.iter = it
        self.current_step = step
        log.info(f"{type(self).__name__}: restoring history")
        for mine, saved in zip(self.history, history, strict=True):
            mine[...] = saved

    def _bcast_state(self) -> None:
        """Give every rank rank 0's weights, history, iteration and schedule step."""
        for array in [p.data for p in self.net.learnable_params] + self.history:
            self.comm.bcast(array)
        counters = self.comm.bcast_values(np.array([self.iter, self.current_step], np.int64))
        self.iter, self.current_step = int(counters[0]), int(counters[1])

    def _skip_consumed_batches(self) -> None:
        """Point every data layer at the batch an uninterrupted run would read next: absolute
        batch numbers, so restoring works whatever the layers had delivered before."""
        p = self.param
        self.net.seek_data(self.iter * p.iter_size)
        tests = snap.count_test_passes(self.iter, p.test_interval, p.test_initialization)
        for k, net in enumerate(self.test_nets):
            net.seek_data(tests * p.test_iter[k])
