"""The ``brewnet`` command end to end: MNIST-format IDX files the test writes → LMDB →
LeNet-shaped training with Caffe's flags → snapshots → resume; bad input → one line."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brewnet.cli.main import normalize_flags
from brewnet.data.datum import decode_batch
from brewnet.data.idx import write_idx
from brewnet.data.lmdb_source import LMDBSource
from brewnet.net import TEST, Net

REPO = Path(__file__).resolve().parents[2]
LENET = (REPO / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()


def brewnet(*args, cwd):
    return subprocess.run([sys.executable, "-m", "brewnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture
def workdir(tmp_path):
    """A folder with IDX files of 256 random 'digits' (train) and 64 (test), the stock LeNet
    net pointing at LMDBs converted from them, and a short solver."""
    rng = np.random.default_rng(0)
    idx = tmp_path / "idx"
    idx.mkdir()
    for prefix, n in (("train", 256), ("t10k", 64)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        write_idx(idx / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(idx / f"{prefix}-labels-idx1-ubyte", labels)
    (tmp_path / "net.prototxt").write_text(
        LENET.replace("examples/mnist/", "db/").replace("batch_size: 100", "batch_size: 32"))
    (tmp_path / "solver.prototxt").write_text("""
        net: "net.prototxt"
        test_iter: 2  test_interval: 4
        base_lr: 0.01  momentum: 0.9  weight_decay: 0.0005
        lr_policy: "inv"  gamma: 0.0001  power: 0.75
        display: 2  max_iter: 8  snapshot: 4  snapshot_prefix: "snap/lenet"
        random_seed: 7
    """)
    (tmp_path / "snap").mkdir()
    return tmp_path


def losses(log: str) -> list[str]:
    return re.findall(r"Iteration (\d+) \(.*\), loss = (\S+)", log)


@pytest.mark.slow
def test_data_train_resume_end_to_end(workdir):
    """`brewnet data mnist --from` builds both LMDBs; `brewnet train -solver=...` (Caffe's
    spelling) trains, tests and snapshots with Caffe's log lines; `--snapshot` resumes and
    reproduces the uninterrupted run's losses."""
    made = brewnet("data", "mnist", "db", "--from", "idx", cwd=workdir)
    assert made.returncode == 0, made.stderr
    assert (workdir / "db" / "mnist_train_lmdb").is_dir()

    full = brewnet("train", "-solver=solver.prototxt", cwd=workdir)
    assert full.returncode == 0, full.stderr
    log = full.stderr
    assert re.search(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ \S+:\d+\] Solving LeNet$", log, re.M)
    assert "Iteration 4, Testing net (#0)" in log
    assert re.search(r"    Test net output #0: accuracy = [\d.e-]+", log)
    assert re.search(r"    Train net output #0: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", log)
    assert "Optimization Done." in log
    for it in (4, 8):
        assert (workdir / "snap" / f"lenet_iter_{it}.caffemodel").is_file()
        assert (workdir / "snap" / f"lenet_iter_{it}.solverstate").is_file()

    # The final snapshot in the deploy net scores the test set as the solver's test net did.
    logged = re.findall(r"Test net output #0: accuracy = (\S+)", log)[-1]
    with LMDBSource(workdir / "db" / "mnist_test_lmdb") as source:
        images, labels = decode_batch(source.read(64), "test db")
    deploy = Net(str(REPO / "examples" / "mnist" / "lenet.prototxt"), TEST,
                 weights=str(workdir / "snap" / "lenet_iter_8.caffemodel"))
    probs = deploy.forward(data=images.astype(np.float32) * 0.00390625)["prob"]
    assert float(np.mean(probs.argmax(1) == labels)) == pytest.approx(float(logged), abs=1e-6)

    resumed = brewnet("solve", "--solver", "solver.prototxt", "--snapshot",
                      "snap/lenet_iter_4.solverstate", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    after = [x for x in losses(full.stderr) if int(x[0]) > 4]
    assert after and losses(resumed.stderr)[-len(after):] == after


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_a_snapshot(workdir):
    """SIGINT (Caffe's default -sigint_effect stop) ends training at the current iteration,
    writes the final snapshot (snapshot_after_train) and exits with status 0."""
    made = brewnet("data", "mnist", "db", "--from", "idx", cwd=workdir)
    assert made.returncode == 0, made.stderr
    solver = (workdir / "solver.prototxt").read_text().replace("max_iter: 8", "max_iter: 100000")
    (workdir / "solver.prototxt").write_text(solver.replace("snapshot: 4", "snapshot: 0"))
    proc = subprocess.Popen([sys.executable, "-m", "brewnet", "solve", "--solver",
                             "solver.prototxt"], cwd=workdir, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    for line in proc.stderr:
        if "Train net output" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, rest
    assert "Optimization stopped early." in rest
    snaps = list((workdir / "snap").glob("lenet_iter_*.solverstate"))
    assert len(snaps) == 1 and not list((workdir / "snap").glob(".*tmp"))


@pytest.mark.parametrize("files, args, match", [
    ({}, ["solve", "--solver", "missing.prototxt"], r"missing\.prototxt"),
    ({"s.prototxt": "base_lr: 0.01\nmax_iter 10\n"}, ["solve", "--solver", "s.prototxt"],
     r"s\.prototxt:2:\d+: "),
    ({"s.prototxt": "base_lr: 0.01 max_iter: 10"}, ["solve", "--solver", "s.prototxt"],
     r"s\.prototxt.*net"),
    ({"s.prototxt": 'net: "n.prototxt"', "n.prototxt": ""}, ["solve", "--solver", "s.prototxt"],
     r"lr_policy is not set"),
    ({"s.prototxt": 'net: "n.prototxt" max_iter: 1 lr_policy: "fixed"',
      "n.prototxt": 'layer { name: "d" type: "Data" top: "x" top: "y" '
                    'data_param { source: "nowhere_lmdb" batch_size: 4 backend: LMDB } }'},
     ["solve", "--solver", "s.prototxt"], r"layer 'd' \(Data\).*nowhere_lmdb"),
    ({"s.prototxt": 'net: "n.prototxt" max_iter: 1 lr_policy: "fixed"',
      "n.prototxt": 'layer { name: "i" type: "Input" top: "x" input_param { shape { dim: 1 } } }'
                    'layer { name: "r" type: "ReLu" bottom: "x" top: "x" }'},
     ["solve", "--solver", "s.prototxt"], r"layer 'r'.*unknown layer type 'ReLu'.*'ReLU'"),
])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, files, args, match):
    """Every bad input: exit status 1, one line on stderr naming the file/layer, no traceback."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = brewnet(*args, cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("brewnet: error")]
    assert len(errors) == 1 and re.search(match, errors[0]), result.stderr
    assert "Traceback" not in result.stderr


def test_caffe_flag_spellings_are_normalized():
    """gflags' -solver=x and -solver x become --solver; negative numbers are left alone."""
    assert normalize_flags(["train", "-solver=s.prototxt", "-gpu", "0", "-1"]) == [
        "train", "--solver=s.prototxt", "--gpu", "0", "-1"]
