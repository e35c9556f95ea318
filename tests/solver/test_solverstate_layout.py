"""A binary .solverstate in BVLC Caffe's exact layout restores as brewnet's own: the bytes
are encoded here by hand from the protobuf wire format (SolverState fields iter=1,
learned_net=2, history=3, current_step=4; BlobProto data=5 packed floats, shape=7 with packed
int64 dims, or the legacy num/channels/height/width = 1..4), independently of brewnet's
schema code, as Caffe's SnapshotSolverStateToBinaryProto writes them."""

from __future__ import annotations

import struct

import numpy as np

from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import SGDSolver
from brewnet.solver import snapshot as snap

NET = """
name: "layout"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 }
    data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "out"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "y" top: "loss" }
"""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + payload
    return key + varint(len(payload)) + payload


def blob(values: np.ndarray, legacy: bool) -> bytes:
    """A BlobProto as Caffe's Blob::ToProto (fields in number order, as C++ serializes)."""
    out = b""
    if legacy:
        dims = (1,) * (4 - values.ndim) + values.shape
        for number, d in enumerate(dims, start=1):
            out += field(number, 0, varint(d))
    out += field(5, 2, struct.pack(f"<{values.size}f", *values.ravel().tolist()))
    if not legacy:
        out += field(7, 2, field(1, 2, b"".join(varint(d) for d in values.shape)))
    return out


def caffe_state(iteration: int, learned_net: str, history: list[np.ndarray], step: int,
                legacy: bool) -> bytes:
    out = field(1, 0, varint(iteration)) + field(2, 2, learned_net.encode())
    for h in history:
        out += field(3, 2, blob(h, legacy))
    return out + field(4, 0, varint(step))


def make_solver(tmp_path) -> SGDSolver:
    p = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="fixed", momentum=0.9, max_iter=20,
                                  snapshot_prefix=str(tmp_path / "s"))
    p.net_param.CopyFrom(parse_text(NET, caffe_pb2.NetParameter()))
    return SGDSolver(p)


def test_caffe_layout_states_restore_like_brewnets(tmp_path):
    """The same content in brewnet's writer's bytes, Caffe's shape-dims layout and the legacy
    4-axis layout restores the same iteration, step, weights and history; brewnet's bytes are
    exactly the hand-encoded Caffe ones."""
    source = make_solver(tmp_path)
    source.step(3)
    model, _ = source.snapshot()
    rng = np.random.default_rng(1)
    history = [rng.normal(size=h.shape).astype(np.float32) for h in source.history]

    ours = tmp_path / "ours.solverstate"
    snap.write_state(str(ours), 12, model, 3, history)
    assert ours.read_bytes() == caffe_state(12, model, history, 3, legacy=False)
    caffe = tmp_path / "caffe.solverstate"
    caffe.write_bytes(caffe_state(12, model, history, 3, legacy=False))
    legacy = tmp_path / "legacy.solverstate"
    legacy.write_bytes(caffe_state(12, model, history, 3, legacy=True))

    for path in (ours, caffe, legacy):
        solver = make_solver(tmp_path)
        solver.restore(str(path))
        assert (solver.iter, solver.current_step) == (12, 3), path.name
        for mine, h in zip(solver.history, history, strict=True):
            np.testing.assert_array_equal(mine, h)
        for name in ("ip",):
            for a, b in zip(solver.net.params[name], source.net.params[name], strict=True):
                np.testing.assert_array_equal(a.data, b.data)
        solver.step(1)  # and it trains on from there
        assert solver.iter == 13
