"""Running brewnet as several MPI ranks from the tests: where mpiexec is, a LeNet on a tiny
learnable MNIST-shaped LMDB, and reading back what a run logged and saved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brewnet.io import blobproto_to_array
from brewnet.proto import caffe_pb2
from tests.data.helpers import make_lmdb

REPO = Path(__file__).resolve().parents[2]
LENET = (REPO / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()


def mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's) or on PATH, if mpi4py imports."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpi4py or mpiexec is not installed "
                               "(pip install 'brewnet[mpi]')")


def make_digits(folder: Path, train: int = 1024, test: int = 200) -> None:
    """Train and test LMDBs of 28x28 'digits': a fixed random template per class plus noise,
    so LeNet learns and test accuracy means something."""
    rng = np.random.default_rng(3)
    templates = rng.integers(0, 256, (10, 1, 28, 28))
    for name, count in (("train_lmdb", train), ("test_lmdb", test)):
        labels = rng.integers(0, 10, count)
        noise = rng.integers(-60, 60, (count, 1, 28, 28))
        images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
        make_lmdb(folder / name, images, labels)


def write_lenet(folder: Path, batch: int, solver_lines: str, name: str) -> Path:
    """``<name>_net.prototxt`` (train batch ``batch``) and ``<name>_solver.prototxt``."""
    net = (LENET.replace("examples/mnist/mnist_", "")
           .replace("batch_size: 64", f"batch_size: {batch}"))
    (folder / f"{name}_net.prototxt").write_text(net)
    solver = folder / f"{name}_solver.prototxt"
    solver.write_text(f'net: "{name}_net.prototxt"\nsnapshot_prefix: "{name}"\n'
                      'random_seed: 1701\n' + solver_lines)
    return solver


def brewnet_env() -> dict[str, str]:
    """The environment of a test's brewnet processes: this checkout, one BLAS thread each."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def brewnet(args: list[str], cwd: Path, ranks: int = 1, timeout: float = 180
            ) -> subprocess.CompletedProcess:
    """``brewnet <args>`` in one process, or under ``mpiexec -n ranks``."""
    env = brewnet_env()
    command = [sys.executable, "-m", "brewnet", *args]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks), *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def weights(path: Path) -> dict[str, np.ndarray]:
    """Every parameter blob of a .caffemodel, by ``layer/index``."""
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {f"{layer.name}/{i}": blobproto_to_array(b)
            for layer in net.layer for i, b in enumerate(layer.blobs)}
