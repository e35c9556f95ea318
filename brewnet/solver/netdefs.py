"""Which nets a SolverParameter describes (Caffe's ``Solver::InitTrainNet`` and
``InitTestNets``): the train net from exactly one of net / net_param / train_net /
train_net_param, test nets from test_net / test_net_param plus one copy of net / net_param per
remaining ``test_iter``, each with its NetState merged as Caffe merges it.

Relative net paths are read from the working directory, as Caffe reads them; a file missing
there but present beside the solver prototxt is taken from there, with a log line saying so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import SolverError
from ..log import log
from ..proto import caffe_pb2
from ..proto.positions import Node
from ..proto.textio import read_net_located

TRAIN_FIELDS = ("net", "net_param", "train_net", "train_net_param")


@dataclass
class NetDef:
    """One net to build: its definition (``param.state`` is the complete NetState), the file
    it came from (for messages), how Caffe's log describes it, and the file's field tree
    (None for a net inside the solver), so errors are located without reading it again."""

    param: caffe_pb2.NetParameter
    source: str
    described: str = ""
    layout: Node | None = None

    @property
    def state(self) -> caffe_pb2.NetState:
        return self.param.state


def resolve_net_path(path: str, solver_dir: str | None) -> str:
    """``path`` as Caffe opens it (from the working directory), else beside the solver file."""
    if os.path.isfile(path) or solver_dir is None or os.path.isabs(path):
        return path
    beside = os.path.join(solver_dir, path)
    if os.path.isfile(beside):
        log.info(f"Net file {path} not found from the working directory; using {beside} "
                 "beside the solver file")
        return beside
    return path


class NetFiles:
    """The net prototxts one solver names, each opened, parsed and upgraded once however many
    nets (the train net and its test twins) are built from it."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[caffe_pb2.NetParameter, Node]] = {}

    def read(self, path: str) -> tuple[caffe_pb2.NetParameter, Node]:
        """A fresh copy of the file's NetParameter (each net gets its own state), and its
        field tree."""
        if path not in self._read:
            self._read[path] = read_net_located(path)
        param, layout = self._read[path]
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(param)
        return copy, layout


def _with_state(param: caffe_pb2.NetParameter, phase: int,
                override: caffe_pb2.NetState | None) -> caffe_pb2.NetParameter:
    """Caffe's precedence: the phase default, then the net's own ``state``, then the solver's
    train_state / test_state (protobuf merge: set scalars win, stages append)."""
    state = caffe_pb2.NetState(phase=phase)
    state.MergeFrom(param.state)
    if override is not None:
        state.MergeFrom(override)
    param.state.CopyFrom(state)
    return param


def train_net_def(param: caffe_pb2.SolverParameter, solver_dir: str | None = None,
                  where: str = "the solver", files: NetFiles | None = None) -> NetDef:
    """The train net's definition; SolverError unless exactly one train-net field is set.
    ``files``: shared with ``test_net_defs`` so a file both name is read once."""
    given = [f for f in TRAIN_FIELDS if param.HasField(f)]
    if not given:
        raise SolverError(f"{where} names no train net; set one of: " + ", ".join(TRAIN_FIELDS))
    if len(given) > 1:
        raise SolverError(f"{where} sets {' and '.join(given)}; keep exactly one of: "
                          + ", ".join(TRAIN_FIELDS))
    field = given[0]
    if field.endswith("_param"):
        log.info(f"Creating training net specified in {field}.")
        net_param = caffe_pb2.NetParameter()
        net_param.CopyFrom(getattr(param, field))
        source, layout = field, None
    else:
        path = getattr(param, field)
        log.info(f"Creating training net from {field} file: {path}")
        source = resolve_net_path(path, solver_dir)
        net_param, layout = (files or NetFiles()).read(source)
    state = param.train_state if param.HasField("train_state") else None
    return NetDef(_with_state(net_param, caffe_pb2.TRAIN, state), source, layout=layout)


def test_net_defs(param: caffe_pb2.SolverParameter, solver_dir: str | None = None,
                  where: str = "the solver", files: NetFiles | None = None) -> list[NetDef]:
    """The test nets' definitions, in Caffe's order: test_net_param, test_net, then the generic
    net / net_param once per remaining test_iter."""
    files = files or NetFiles()
    generic = [f for f in ("net", "net_param") if param.HasField(f)]
    if len(generic) > 1:
        raise SolverError(f"{where} sets both net and net_param; keep one")
    explicit = len(param.test_net_param) + len(param.test_net)
    n_iter = len(param.test_iter)
    if (n_iter < explicit) if generic else (n_iter != explicit):
        raise SolverError(f"{where} defines {explicit} test net(s) (test_net/test_net_param) "
                          f"but {n_iter} test_iter value(s); give one test_iter per test net")
    defs: list[tuple[caffe_pb2.NetParameter, str, str, Node | None]] = []
    for p in param.test_net_param:
        defs.append((p, "test_net_param", "test_net_param", None))
    for path in param.test_net:
        resolved = resolve_net_path(path, solver_dir)
        net_param, layout = files.read(resolved)
        defs.append((net_param, f"test_net file: {path}", resolved, layout))
    for _ in range(n_iter - explicit):
        if generic[0] == "net_param":
            defs.append((param.net_param, "net_param", "net_param", None))
        else:
            resolved = resolve_net_path(param.net, solver_dir)
            net_param, layout = files.read(resolved)
            defs.append((net_param, f"net file: {param.net}", resolved, layout))
    if len(param.test_state) and len(param.test_state) != len(defs):
        raise SolverError(f"{where} gives {len(param.test_state)} test_state(s) for "
                          f"{len(defs)} test net(s); give none or one per test net")
    if defs and param.test_interval <= 0:
        raise SolverError(f"{where} defines {len(defs)} test net(s) but test_interval is "
                          f"{param.test_interval}; set test_interval > 0")
    out = []
    for i, (net_param, described, source, layout) in enumerate(defs):
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(net_param)
        state = param.test_state[i] if len(param.test_state) else None
        out.append(NetDef(_with_state(copy, caffe_pb2.TEST, state), source, described, layout))
    return out
