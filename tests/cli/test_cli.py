"""The ``brewnet`` command end to end: MNIST-format IDX files the test writes → LMDB →
LeNet-shaped training with Caffe's flags → snapshots → resume; bad input → one line."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from brewnet import backend
from brewnet.blob import Blob
from brewnet.cli import data as data_cmd
from brewnet.cli import main as cli
from brewnet.cli import solve as solve_cmd
from brewnet.cli.devices import choose_device, parse_gpus
from brewnet.cli.main import normalize_flags
from brewnet.data.datum import array_to_datum, decode_batch
from brewnet.data.idx import write_idx
from brewnet.data.lmdb_source import LMDBSource, write_lmdb
from brewnet.errors import BrewnetError
from brewnet.net import TEST, Net
from brewnet.proto import caffe_pb2

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
        display: 1  max_iter: 8  snapshot: 4  snapshot_prefix: "snap/lenet"
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
    reproduces the uninterrupted run's losses at every displayed iteration after the
    snapshot."""
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
    assert "Resuming from snap/lenet_iter_4.solverstate" in resumed.stderr
    after = [x for x in losses(full.stderr) if int(x[0]) >= 4]
    assert [int(x[0]) for x in after] == [4, 5, 6, 7]
    assert losses(resumed.stderr) == after


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


def test_gflags_boolean_values():
    """gflags' -gray=true is the switch, -shuffle=false leaves it off; other values stay."""
    assert normalize_flags(["convert_imageset", "-gray=true", "--shuffle=False", "-check_size",
                            "--iterations=1", "-backend=lmdb", "root/"]) == [
        "convert_imageset", "--gray", "--check_size", "--iterations=1", "--backend=lmdb",
        "root/"]


# -- in-process tests on a tiny net -------------------------------------------------------------
TINY_NET = """
name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label"
  data_param { source: "db" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "staged" type: "ReLU" bottom: "ip" top: "ip" include { stage: "relu" } }
layer { name: "leveled" type: "ReLU" bottom: "ip" top: "ip" include { min_level: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

TINY_SOLVER = """net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" display: 1 max_iter: 4
snapshot: 2 snapshot_prefix: "tiny" random_seed: 3
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A 10-record LMDB, the tiny net and its solver in the working folder."""
    rng = np.random.default_rng(1)
    write_lmdb(tmp_path / "db", ((b"%08d" % i, array_to_datum(
        rng.normal(size=(1, 2, 2)).astype(np.float32), i % 3)) for i in range(10)))
    (tmp_path / "net.prototxt").write_text(TINY_NET)
    (tmp_path / "solver.prototxt").write_text(TINY_SOLVER)
    monkeypatch.chdir(tmp_path)
    return tmp_path



def test_weights_flag_replaces_and_snapshot_clears_solver_weights(tiny, glog):
    """Caffe's train: --weights replaces the solver file's `weights` (loaded by the solver
    into every net, logged `Finetuning from`); --snapshot clears them and resumes, logging
    `Starting Optimization` then `Resuming from`; images/s counts only iterations run."""
    assert cli.main(["train", "--solver", "solver.prototxt"]) == 0
    (tiny / "s2.prototxt").write_text(TINY_SOLVER + 'weights: "missing.caffemodel"\n')
    start = len(glog.messages())
    assert cli.main(["train", "-solver=s2.prototxt", "-weights=tiny_iter_2.caffemodel"]) == 0
    msgs = glog.messages()[start:]
    assert msgs.count("Finetuning from tiny_iter_2.caffemodel") == 1  # train net only
    assert not any("missing" in m for m in msgs)
    assert any(re.fullmatch(r"Training took \S+ s for 4 iterations: \d+ training images/s "
                            r"\(including tests\)", m) for m in msgs)
    start = len(glog.messages())
    assert cli.main(["train", "-solver=s2.prototxt", "-snapshot=tiny_iter_4.solverstate"]) == 0
    msgs = glog.messages()[start:]
    assert not any("Finetuning" in m or "missing" in m for m in msgs)
    assert msgs.index("Starting Optimization") < msgs.index(
        "Resuming from tiny_iter_4.solverstate") < msgs.index("Solving tiny")
    assert any(re.fullmatch(r"Training took \S+ s for 0 iterations", m) for m in msgs)


def test_level_and_stage_set_the_train_state(tiny, monkeypatch):
    """--level and --stage (comma-separated) go into train_state, selecting layers by their
    NetState rules as Caffe's train does."""
    import brewnet.solver as solvers

    built = []
    real = solvers.get_solver
    monkeypatch.setattr(solvers, "get_solver", lambda *a, **kw: built.append(real(*a, **kw))
                        or built[-1])
    assert cli.main(["train", "--solver", "solver.prototxt"]) == 0
    assert "staged" not in built[0].net.layer_dict and "leveled" not in built[0].net.layer_dict
    assert cli.main(["train", "-solver", "solver.prototxt", "-level", "2",
                     "-stage", "relu,other"]) == 0
    state = built[1].net.state
    assert state.level == 2 and list(state.stage) == ["relu", "other"]
    assert "staged" in built[1].net.layer_dict and "leveled" in built[1].net.layer_dict


def test_parse_gpus():
    """Caffe's -gpu values: one id, a list, `all` (every device); -1 or empty: the CPU; any
    other value is a BrewnetError naming it."""
    assert parse_gpus("0", lambda: 0) == [0]
    assert parse_gpus("0,1", lambda: 0) == [0, 1]
    assert parse_gpus("all", lambda: 3) == [0, 1, 2]
    assert parse_gpus("-1", lambda: 0) == [] and parse_gpus("", lambda: 0) == []
    for bad in ("x", "0,a", "1.5", "-2", "0,"):
        with pytest.raises(BrewnetError, match="is not a device number"):
            parse_gpus(bad, lambda: 0)


def test_choose_device(monkeypatch, glog):
    """Without --gpu, solver_mode: GPU asks for device_id, falling back to the CPU with a
    warning when CuPy/a device is missing (an unset solver_mode means the CPU even though the
    schema's default is GPU); with several ids the first is used and a line says so."""
    gpu_mode = caffe_pb2.SolverParameter(solver_mode=caffe_pb2.SolverParameter.GPU,
                                         device_id=1)
    monkeypatch.setattr(backend, "cupy_or_none", lambda: None)
    assert choose_device(None, caffe_pb2.SolverParameter()) is None
    assert choose_device(None, gpu_mode) is None
    assert any("solver_mode: GPU but CuPy" in m and "on the CPU" in m for m in glog.messages())
    with pytest.raises(BrewnetError, match="needs CuPy and a CUDA device"):
        choose_device("0", caffe_pb2.SolverParameter())
    assert choose_device("-1", gpu_mode) is None

    used = []
    monkeypatch.setattr(backend, "cupy_or_none", lambda: SimpleNamespace(cuda=SimpleNamespace(
        runtime=SimpleNamespace(getDeviceCount=lambda: 2))))
    monkeypatch.setattr(backend, "set_mode_gpu", lambda: used.append("gpu"))
    monkeypatch.setattr(backend, "set_device", used.append)
    assert choose_device(None, gpu_mode) == 1 and used == ["gpu", 1]
    assert choose_device("all", caffe_pb2.SolverParameter()) == 0
    assert any("GPUs 0,1 requested; brewnet uses one device: GPU 0" in m for m in glog.messages())
    with pytest.raises(BrewnetError, match="GPU 5 does not exist: 2 device"):
        choose_device("5", caffe_pb2.SolverParameter())


def test_batch_size_lookup_is_guarded():
    """images/s needs the first layer's batch; a first layer without tops or with a 0-d top
    gives None (only the time is logged)."""
    def solver(tops):
        return SimpleNamespace(net=SimpleNamespace(top_vecs=tops))

    assert solve_cmd._batch_size(solver([[Blob((4, 2))]])) == 4
    assert solve_cmd._batch_size(solver([[Blob(())]])) is None
    assert solve_cmd._batch_size(solver([[]])) is None
    assert solve_cmd._batch_size(solver([])) is None


def test_internal_error_is_one_line(monkeypatch, capsys):
    """An unexpected exception (a bug) is one line naming its type, exit status 1; --debug
    shows the traceback."""
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(data_cmd, "run", broken)
    assert cli.main(["data", "mnist", "out"]) == 1
    assert capsys.readouterr().err == ("brewnet: internal error: RuntimeError: boom (run with "
                                       "--debug for the traceback)\n")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "data", "mnist", "out"])


def test_signal_handlers_are_restored(tiny):
    """After an in-process run the previous SIGINT handler is back."""
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["solve", "--solver", "solver.prototxt"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
