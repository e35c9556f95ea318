"""Fuzzing the file readers and the compiler: mutated prototxt and solver text, and mutated
.caffemodel / .solverstate / .binaryproto / .h5 files, either load or raise a BrewnetError;
never another exception, a hang or a crash, and a file that fails to load leaves the net's
weights untouched.

Examples are derandomized, so CI runs the same cases every time. ``BREWNET_FUZZ_EXAMPLES``
multiplies the example counts for a longer local hunt.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from brewnet.data.transform import load_mean_file
from brewnet.errors import BrewnetError
from brewnet.net.weights import array_to_blobproto
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import read_binary, write_binary
from brewnet.proto.textio import read_net, read_solver
from brewnet.solver import get_solver
from tests.data.helpers import image_stack, make_lmdb

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from brewnet.net.net import Net  # noqa: E402

# mutated numbers (nan, inf, 1e38) make NumPy warn while the nets run; that is expected
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

REPO = Path(__file__).resolve().parents[1]
SCALE = max(1, int(os.environ.get("BREWNET_FUZZ_EXAMPLES", "1")))
EXAMPLE_TIMEOUT_S = 10  # a case running longer than this is a hang

NET_SEEDS = ["examples/mnist/lenet.prototxt", "examples/mnist/lenet_train_test.prototxt",
             "examples/mnist/mnist_autoencoder.prototxt",
             "tests/net/fixtures/fcn_small_deploy.prototxt"]
# large nets: parsed and upgraded only (building them allocates hundreds of MB)
PARSE_ONLY_SEEDS = ["tests/net/fixtures/alexnet_deploy.prototxt",
                    "tests/net/fixtures/googlenet_train.prototxt"]
SOLVER_SEEDS = ["examples/mnist/lenet_solver.prototxt",
                "examples/mnist/lenet_multistep_solver.prototxt",
                "examples/mnist/lenet_solver_adam.prototxt",
                "examples/mnist/lenet_adadelta_solver.prototxt",
                "examples/mnist/mnist_autoencoder_solver_nesterov.prototxt"]

# Numbers written into fields: edge cases of the int32/uint32/float fields, and sizes so large
# that no array of them can exist (never sizes that would allocate gigabytes).
NUMBERS = ["-1", "0", "1", "2", "3", "7", "-2147483648", "2147483647", "4294967295",
           "1099511627776", "99999999999999999999", "0.5", "-0.5", "1e-45", "1e38", "nan",
           "inf", "-inf"]
TOKEN = re.compile(rb'"[^"\n]*"|[{}:]|[^\s{}:"]+')
NUMBER = re.compile(rb"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|-?inf|nan", re.IGNORECASE)

text_ops = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "delete", "duplicate",
                                               "number"]),
                              st.integers(0, 2**31), st.integers(0, 255),
                              st.sampled_from(NUMBERS)),
                    min_size=1, max_size=3)
binary_ops = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete",
                                                 "varint"]),
                                st.integers(0, 2**31), st.integers(0, 255)),
                      min_size=1, max_size=3)



def fuzz(examples: int) -> settings:
    """Reproducible settings: derandomized, no example database, no timing deadline (a hang
    is caught by time_limit instead, as shared CI machines vary too much for a deadline)."""
    return settings(max_examples=examples * SCALE, derandomize=True, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(BaseException):
    """Raised in the main thread when one case runs past EXAMPLE_TIMEOUT_S (a BaseException,
    so no ``except Exception`` in the code under test can swallow it)."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def mutate_text(data: bytes, ops: list[tuple[str, int, int, str]]) -> bytes:
    """Byte flips, truncations, token deletions and duplications, numbers replaced."""
    for op, where, byte, number in ops:
        tokens = [m.span() for m in TOKEN.finditer(data)]
        if op == "flip" and data:
            i = where % len(data)
            data = data[:i] + bytes([byte]) + data[i + 1:]
        elif op == "truncate":
            data = data[:where % (len(data) + 1)]
        elif op in ("delete", "duplicate") and tokens:
            s, e = tokens[where % len(tokens)]
            middle = b"" if op == "delete" else data[s:e] + b" " + data[s:e]
            data = data[:s] + middle + data[e:]
        elif op == "number":
            numbers = [m.span() for m in NUMBER.finditer(data)]
            if numbers:
                s, e = numbers[where % len(numbers)]
                data = data[:s] + number.encode() + data[e:]
    return data


def mutate_binary(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Byte flips, truncations, inserted and deleted bytes, and 5-byte runs of 0xff (a varint
    length or tag far out of range)."""
    for op, where, byte in ops:
        i = where % (len(data) + 1)
        if op == "flip" and data:
            i %= len(data)
            data = data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1:]
        elif op == "truncate":
            data = data[:i]
        elif op == "insert":
            data = data[:i] + bytes([byte]) + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + 1:]
        elif op == "varint":
            data = data[:i] + b"\xff" * 5 + data[i + 5:]
    return data


def expect_brewnet_outcome(run: Callable[[], object]) -> BrewnetError | None:
    """Run one case: success (None) or the BrewnetError raised; anything else fails."""
    try:
        with time_limit(EXAMPLE_TIMEOUT_S):
            run()
    except BrewnetError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return e
    return None


def _small(text: str, db: Path) -> str:
    """A seed made cheap to build: batches of 2 and the tiny LMDB as every data source."""
    text = re.sub(r'source: "[^"]*"', f'source: "{db}"', text)
    text = re.sub(r"batch_size: \d+", "batch_size: 2", text)
    return re.sub(r"shape \{ dim: \d+", "shape { dim: 2", text)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    make_lmdb(folder / "db", image_stack(6, (1, 28, 28)))
    return folder


@pytest.fixture(scope="module")
def net_seeds(work) -> list[bytes]:
    return [_small((REPO / name).read_text(), work / "db").encode() for name in NET_SEEDS]


@pytest.fixture(scope="module")
def solver_seeds(work, net_seeds) -> list[bytes]:
    net = work / "train_test.prototxt"
    net.write_bytes(net_seeds[1])
    out = []
    for name in SOLVER_SEEDS:
        text = (REPO / name).read_text()
        text = re.sub(r'net: "[^"]*"', f'net: "{net}"', text)
        text = re.sub(r'snapshot_prefix: "[^"]*"', f'snapshot_prefix: "{work}/snap"', text)
        out.append(text.encode())
    return out


def _build_and_run(path: Path, phase: int) -> None:
    net = Net(read_net(path), phase, source=str(path))
    try:
        net.forward()
        net.backward()
    finally:
        net.close()


@fuzz(120)
@given(seed=st.integers(0, len(NET_SEEDS) - 1), ops=text_ops, train=st.booleans())
def test_mutated_net_text(work, net_seeds, seed, ops, train):
    """A mutated net prototxt parses, compiles and runs one forward/backward pass, or says
    what is wrong in one BrewnetError line."""
    path = work / "mutated_net.prototxt"
    path.write_bytes(mutate_text(net_seeds[seed], ops))
    expect_brewnet_outcome(lambda: _build_and_run(path, caffe_pb2.TRAIN if train
                                                  else caffe_pb2.TEST))


@fuzz(40)
@given(seed=st.integers(0, len(PARSE_ONLY_SEEDS) - 1), ops=text_ops)
def test_mutated_large_net_text_parses(work, seed, ops):
    """Large real-world nets, mutated, parse and upgrade or raise a BrewnetError."""
    path = work / "mutated_large.prototxt"
    path.write_bytes(mutate_text((REPO / PARSE_ONLY_SEEDS[seed]).read_bytes(), ops))
    expect_brewnet_outcome(lambda: read_net(path))


def _build_solver(path: Path) -> None:
    solver = get_solver(read_solver(path), source=str(path))
    solver.close()


@fuzz(60)
@given(seed=st.integers(0, len(SOLVER_SEEDS) - 1), ops=text_ops)
def test_mutated_solver_text(work, solver_seeds, seed, ops):
    """A mutated solver prototxt builds its solver and nets or raises a BrewnetError."""
    path = work / "mutated_solver.prototxt"
    path.write_bytes(mutate_text(solver_seeds[seed], ops))
    expect_brewnet_outcome(lambda: _build_solver(path))


# ------------------------------------------------------------------------------------------
# binary files
# ------------------------------------------------------------------------------------------
TINY_NET = """
name: "tiny"
layer { name: "data"  type: "Input"  top: "data"  top: "label"
  input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 }  shape { dim: 2 } } }
layer { name: "conv"  type: "Convolution"  bottom: "data"  top: "conv"
  convolution_param { num_output: 3  kernel_size: 3  weight_filler { type: "xavier" } } }
layer { name: "ip"  type: "InnerProduct"  bottom: "conv"  top: "ip"
  inner_product_param { num_output: 4  weight_filler { type: "xavier" } } }
layer { name: "loss"  type: "SoftmaxWithLoss"  bottom: "ip"  bottom: "label"  top: "loss" }
"""
TINY_SOLVER = """
net: "{net}"
base_lr: 0.1  momentum: 0.9  lr_policy: "fixed"  max_iter: 2
snapshot_prefix: "{prefix}"  snapshot_format: {fmt}  random_seed: 3  solver_mode: CPU
"""


@pytest.fixture(scope="module")
def snapshots(work) -> Iterator[Snapshots]:
    """One tiny net's snapshots in both formats, a mean binaryproto and the net to load
    them into."""
    net_path = work / "tiny.prototxt"
    net_path.write_text(TINY_NET)
    files: dict[str, bytes] = {}
    solvers = {}
    for fmt in ("BINARYPROTO", "HDF5"):
        if fmt == "HDF5" and not _have_h5py():
            continue
        solver_path = work / f"tiny_solver_{fmt}.prototxt"
        solver_path.write_text(TINY_SOLVER.format(net=net_path, prefix=work / f"tiny_{fmt}",
                                                  fmt=fmt))
        solver = get_solver(read_solver(solver_path), source=str(solver_path))
        solver.step(1)
        model, state = solver.snapshot()
        files[f"{fmt}.model"] = Path(model).read_bytes()
        files[f"{fmt}.state"] = Path(state).read_bytes()
        solvers[fmt] = solver
    mean = work / "mean.binaryproto"
    write_binary(mean, array_to_blobproto(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)))
    files["mean"] = mean.read_bytes()
    yield Snapshots(files, solvers, Net(str(net_path), caffe_pb2.TEST))
    for solver in solvers.values():
        solver.close()


class Snapshots(dict):
    """The snapshots fixture (a short repr keeps hypothesis' failure reports readable)."""

    def __init__(self, files: dict[str, bytes], solvers: dict, net: Net):
        super().__init__(files=files, solvers=solvers, net=net)

    def __repr__(self) -> str:
        return "<tiny-net snapshots>"


def _have_h5py() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def _weights(net: Net) -> list[np.ndarray]:
    return [b.data.copy() for layer in net.layers for b in layer.blobs]


def _check_untouched_on_error(net: Net, run: Callable[[], object]) -> None:
    before = _weights(net)
    if expect_brewnet_outcome(run) is not None:
        after = _weights(net)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after,
                                                                        strict=True)), \
            "a file that failed to load changed the net's weights"


@fuzz(120)
@given(ops=binary_ops)
def test_mutated_caffemodel(work, snapshots, ops):
    """A mutated .caffemodel loads whole or raises a BrewnetError and leaves the net as it
    was (never half-loaded)."""
    path = work / "mutated.caffemodel"
    path.write_bytes(mutate_binary(snapshots["files"]["BINARYPROTO.model"], ops))
    _check_untouched_on_error(snapshots["net"], lambda: snapshots["net"].copy_from(path))


@fuzz(80)
@given(ops=binary_ops)
def test_mutated_solverstate(work, snapshots, ops):
    """A mutated .solverstate restores or raises a BrewnetError without touching the
    solver's weights."""
    path = work / "mutated.solverstate"
    path.write_bytes(mutate_binary(snapshots["files"]["BINARYPROTO.state"], ops))
    solver = snapshots["solvers"]["BINARYPROTO"]
    _check_untouched_on_error(solver.net, lambda: solver.restore(path))


@fuzz(80)
@given(ops=binary_ops)
def test_mutated_binaryproto(work, snapshots, ops):
    """A mutated mean .binaryproto reads as a (C, H, W) mean or raises a BrewnetError."""
    path = work / "mutated.binaryproto"
    path.write_bytes(mutate_binary(snapshots["files"]["mean"], ops))
    expect_brewnet_outcome(lambda: load_mean_file(str(path)))
    expect_brewnet_outcome(lambda: read_binary(path, caffe_pb2.BlobProto))


@fuzz(60)
@given(ops=binary_ops, which=st.sampled_from(["model", "state"]))
def test_mutated_hdf5_snapshots(work, snapshots, ops, which):
    """A mutated .caffemodel.h5 / .solverstate.h5 loads or raises a BrewnetError, leaving
    the weights untouched on error."""
    if "HDF5" not in snapshots["solvers"]:
        pytest.skip("h5py is not installed")
    solver = snapshots["solvers"]["HDF5"]
    path = work / f"mutated.{'caffemodel' if which == 'model' else 'solverstate'}.h5"
    path.write_bytes(mutate_binary(snapshots["files"][f"HDF5.{which}"], ops))
    load = (lambda: solver.net.copy_from(path)) if which == "model" else \
        (lambda: solver.restore(path))
    _check_untouched_on_error(solver.net, load)
