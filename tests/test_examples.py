"""Every solver in examples/mnist builds its nets and trains a step, on tiny MNIST-shaped
LMDBs placed where the examples expect them (paths are relative to the working directory)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from tests.data.helpers import make_lmdb

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mnist"
SOLVERS = sorted(p.name for p in EXAMPLES.glob("*solver*.prototxt"))


@pytest.fixture
def mnist_tree(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "examples" / "mnist"
    folder.mkdir(parents=True)
    for name, count in (("mnist_train_lmdb", 128), ("mnist_test_lmdb", 100)):
        make_lmdb(folder / name, rng.integers(0, 256, (count, 1, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, count))
    for f in EXAMPLES.glob("*.prototxt"):
        shutil.copy(f, folder / f.name)
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.parametrize("name", SOLVERS)
def test_example_solver_builds_and_steps(mnist_tree, name):
    """The solver's type, its net and its test nets compile; two training steps give a finite
    loss (test_initialization is turned off to keep this fast)."""
    param = text_format.Parse((mnist_tree / name).read_text(),
                              brewnet.proto.caffe_pb2.SolverParameter())
    param.test_initialization = False
    solver = brewnet.get_solver(param, source=str(mnist_tree / name))
    try:
        assert type(solver).__name__ == f"{param.type}Solver"  # type defaults to "SGD"
        solver.step(2)
        assert solver.iter == 2
        outputs = [float(np.sum(solver.net.blobs[n].data)) for n in solver.net.outputs]
        assert all(np.isfinite(outputs))
    finally:
        solver.close()
