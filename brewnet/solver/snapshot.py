"""Snapshot files: ``<prefix>_iter_<N>.caffemodel`` (the net's weights, a binary NetParameter)
and ``<prefix>_iter_<N>.solverstate`` (``SolverState{iter, learned_net, history[],
current_step}``), in Caffe's binary formats so either side can resume the other's runs.

Everything is written atomically (brewnet.fileio), so a crash mid-snapshot leaves the previous
snapshot whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from ..backend import get_array_module, to_numpy
from ..errors import SolverError, WeightsError
from ..log import log
from ..net.weights import array_to_blobproto, blobproto_to_array
from ..proto import caffe_pb2
from ..proto.binaryio import read_binary, write_binary

MODEL_EXT = ".caffemodel"
STATE_EXT = ".solverstate"


def snapshot_filename(prefix: str, iter: int, extension: str) -> str:
    """Caffe's ``SnapshotFilename``: prefix + ``_iter_`` + N + extension."""
    return f"{prefix}_iter_{iter}{extension}"


def upgrade_snapshot_prefix(param: caffe_pb2.SolverParameter, solver_path: str) -> None:
    """Caffe's UpgradeSnapshotPrefixProperty: no prefix means the solver file's path without
    its extension; a prefix that is a folder means that folder + the solver file's stem."""
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = os.path.splitext(solver_path)[0]
        log.info(f"snapshot_prefix was not specified and is set to {param.snapshot_prefix}")
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, Path(solver_path).stem)
        log.info(f"snapshot_prefix was a directory and is replaced to {param.snapshot_prefix}")


def check_snapshot_prefix(param: caffe_pb2.SolverParameter) -> None:
    """Fail at start-up, not after hours of training, when snapshots could not be written:
    write and delete ``<prefix>_iter_0.tempfile`` as Caffe does (only when ``snapshot`` is
    set, as Caffe)."""
    if not param.snapshot:
        return
    if not param.HasField("snapshot_prefix"):
        raise SolverError("the solver sets `snapshot` but no `snapshot_prefix`; add "
                          "snapshot_prefix: \"<folder>/<name>\"")
    probe = snapshot_filename(param.snapshot_prefix, 0, ".tempfile")
    try:
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise SolverError(f"cannot write to snapshot prefix '{param.snapshot_prefix}' "
                          f"({probe}: {e.strerror or e}); make sure that the folder exists and "
                          "is writable") from None


def write_model(net: Any, filename: str, write_diff: bool) -> None:
    """The net's layers and parameter blobs (diffs too if ``write_diff``) as a .caffemodel."""
    log.info(f"Snapshotting to binary proto file {filename}")
    write_binary(filename, net.to_proto(write_diff))


def write_state(filename: str, iter: int, learned_net: str, current_step: int,
                history: Sequence[Any]) -> None:
    """A .solverstate; ``history`` arrays in the update rule's order."""
    state = caffe_pb2.SolverState(iter=iter, learned_net=learned_net,
                                  current_step=current_step)
    for h in history:
        state.history.append(array_to_blobproto(to_numpy(h)))
    log.info(f"Snapshotting solver state to binary proto file {filename}")
    write_binary(filename, state)


def _weights_instead(path: str) -> WeightsError:
    stem = path[: -len(MODEL_EXT)] if path.endswith(MODEL_EXT) else os.path.splitext(path)[0]
    return WeightsError(f"this is a .caffemodel (weights only); resuming needs the "
                        f".solverstate written beside it (e.g. {stem}{STATE_EXT}); to start "
                        "from these weights instead, pass them as weights (-weights)", file=path)


def _is_net_parameter(path: str) -> bool:
    """Whether the file decodes as a NetParameter with layers (a .caffemodel given by mistake:
    its bytes may also decode as a SolverState holding only unknown fields)."""
    try:
        with open(path, "rb") as f:
            net = caffe_pb2.NetParameter.FromString(f.read())
    except (OSError, DecodeError):
        return False
    return bool(len(net.layer) or len(net.layers))


def read_state(path: str | os.PathLike) -> caffe_pb2.SolverState:
    """Read a .solverstate; a truncated or corrupt file raises WeightsError naming it, and a
    .caffemodel given instead says which file is needed."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        raise SolverError("an HDF5 solver state; read it with "
                          "brewnet.solver.hdf5_snapshot.read_state_hdf5 (Solver.restore does)",
                          file=path)
    if path.endswith(MODEL_EXT):
        raise _weights_instead(path)
    state = read_binary(path, caffe_pb2.SolverState)
    known = any(state.HasField(f) for f in ("iter", "learned_net", "current_step"))
    if not known and not len(state.history) and _is_net_parameter(path):
        raise _weights_instead(path)
    if not state.HasField("iter"):
        raise WeightsError(f"not a solver state (no iteration count); pass the "
                           f"{STATE_EXT} file a snapshot wrote", file=path)
    return state


def resolve_learned_net(learned_net: str, state_path: str) -> str:
    """The weights file a state names: as written (Caffe's behaviour, relative to the working
    folder), else beside the state file, so a moved snapshot folder still resumes."""
    if os.path.isfile(learned_net):
        return learned_net
    folder = os.path.dirname(os.path.abspath(state_path))
    for candidate in (os.path.join(folder, learned_net),
                      os.path.join(folder, os.path.basename(learned_net))):
        if os.path.isfile(candidate):
            log.info(f"learned_net {learned_net} not found from the working directory; "
                     f"using {candidate} beside the solver state")
            return candidate
    raise WeightsError(f"its weights file '{learned_net}' (learned_net) was not "
                       "found, neither from the working directory nor beside the state file",
                       file=state_path)


def history_arrays(state: caffe_pb2.SolverState, path: str, expected: Sequence[Any]) -> list:
    """The state's history blobs as arrays shaped and placed like ``expected`` (the solver's
    own history), or an error naming the mismatch."""

    def decode(i: int, bp: caffe_pb2.BlobProto) -> np.ndarray:
        try:
            return blobproto_to_array(bp)
        except (WeightsError, ValueError) as e:
            raise WeightsError(f"history blob {i} is malformed: {e}; the "
                               f"{STATE_EXT} file is damaged", file=path) from None

    return place_history(state.history, path, expected, decode)


def place_history(stored: Sequence[Any], path: str, expected: Sequence[Any],
                  decode: Callable[[int, Any], np.ndarray] = lambda i, values: values
                  ) -> list:
    """Stored history entries (BlobProtos through ``decode``, or arrays as they are) shaped
    and placed like ``expected``; the count and each size must agree. Both state formats
    (.solverstate and .solverstate.h5) restore through this."""
    if len(stored) != len(expected):
        raise WeightsError(f"incorrect length of history blobs: the state holds "
                           f"{len(stored)}, this solver and net need {len(expected)}; "
                           "was it written by another solver type or net?", file=path)
    out = []
    for i, (entry, mine) in enumerate(zip(stored, expected, strict=True)):
        values = decode(i, entry)
        if values.size != mine.size:
            raise WeightsError(f"history blob {i} has shape {tuple(values.shape)} but "
                               f"its parameter has shape {tuple(mine.shape)}", file=path)
        out.append(get_array_module(mine).asarray(values.reshape(mine.shape)))
    return out


def count_test_passes(iter: int, test_interval: int, test_initialization: bool) -> int:
    """How many TestAll passes a run made at iterations ``0 .. iter-1`` (each test runs at the
    start of an iteration whose index is a multiple of ``test_interval``; iteration 0 only
    with ``test_initialization``)."""
    if not test_interval or iter <= 0:
        return 0
    count = (iter + test_interval - 1) // test_interval
    return count - (0 if test_initialization else 1)
