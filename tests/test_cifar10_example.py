"""examples/cifar10 trains on LMDBs that ``brewnet data cifar10`` builds from synthetic pickled
batches placed where the examples expect them (paths are relative to the working directory)."""

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from brewnet.cli.main import main
from tests.data.test_cifar10 import write_cifar_dir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cifar10"


@pytest.fixture
def cifar_tree(tmp_path, monkeypatch):
    """A working directory with examples/cifar10 holding the prototxts, the converted LMDBs
    (100 training and 20 test images) and the mean file, built through the CLI."""
    write_cifar_dir(tmp_path / "cifar-10-batches-py")
    folder = tmp_path / "examples" / "cifar10"
    folder.mkdir(parents=True)
    for f in EXAMPLES.glob("*.prototxt"):
        shutil.copy(f, folder / f.name)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "cifar10", "examples/cifar10", "--from", "cifar-10-batches-py"]) == 0
    return folder


def train(folder, name, iterations):
    """Build the solver with test_initialization off and run ``iterations`` steps; returns
    the training losses and the solver's type."""
    param = text_format.Parse((folder / name).read_text(),
                              brewnet.proto.caffe_pb2.SolverParameter())
    param.test_initialization = False
    solver = brewnet.get_solver(param, source=str(folder / name))
    losses = []
    try:
        for _ in range(iterations):
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        assert solver.iter == iterations
        assert solver.test_nets[0].blobs["data"].data.shape == (100, 3, 32, 32)
    finally:
        solver.close()
    return losses


def test_example_files_match_the_layout(cifar_tree):
    """The solvers point at the example nets, run on the CPU, and the nets read the converted
    LMDBs and mean file; the full net has WITHIN_CHANNEL LRN, the quick net none."""
    assert sorted(p.name for p in cifar_tree.iterdir()) == [
        "cifar10_full_solver.prototxt", "cifar10_full_train_test.prototxt",
        "cifar10_quick_solver.prototxt", "cifar10_quick_train_test.prototxt",
        "cifar10_test_lmdb", "cifar10_train_lmdb", "mean.binaryproto"]
    pb = brewnet.proto.caffe_pb2
    for kind in ("quick", "full"):
        solver = text_format.Parse((cifar_tree / f"cifar10_{kind}_solver.prototxt").read_text(),
                                   pb.SolverParameter())
        assert solver.net == f"examples/cifar10/cifar10_{kind}_train_test.prototxt"
        assert solver.solver_mode == pb.SolverParameter.CPU
        net = text_format.Parse(Path(solver.net).read_text(), pb.NetParameter())
        sources = [layer.data_param.source for layer in net.layer if layer.type == "Data"]
        assert sources == ["examples/cifar10/cifar10_train_lmdb",
                           "examples/cifar10/cifar10_test_lmdb"]
        lrn = [layer.lrn_param.norm_region for layer in net.layer if layer.type == "LRN"]
        assert lrn == ([pb.LRNParameter.WITHIN_CHANNEL] * 2 if kind == "full" else [])


def test_cli_without_from_says_where_to_get_cifar(tmp_path, capsys):
    """No download exists: the one-line error names cifar-10-python.tar.gz and --from."""
    assert main(["data", "cifar10", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar-10-python.tar.gz" in err and "--from" in err


def test_cifar10_quick_trains(cifar_tree):
    """cifar10_quick takes three SGD steps on the converted data with finite losses."""
    start = time.perf_counter()
    losses = train(cifar_tree, "cifar10_quick_solver.prototxt", 3)
    assert all(np.isfinite(losses)), losses
    print(f"cifar10_quick: 3 iterations in {time.perf_counter() - start:.1f} s")


def test_cifar10_full_trains(cifar_tree):
    """cifar10_full (with LRN) takes two SGD steps on the converted data with finite losses."""
    start = time.perf_counter()
    losses = train(cifar_tree, "cifar10_full_solver.prototxt", 2)
    assert all(np.isfinite(losses)), losses
    print(f"cifar10_full: 2 iterations in {time.perf_counter() - start:.1f} s")
