"""The companion commands end to end on the stock LeNet example (tiny LMDBs made here, not
MNIST): solve with --log-json, parse_log, plot, test with the trained weights, device_query;
the progress line on a real terminal; bad input gives one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brewnet.cli import main as cli
from tests.data.helpers import image_stack, make_lmdb
from tests.tools.tiny import captured_log, write_tiny

REPO = Path(__file__).resolve().parents[2]
LENET = (REPO / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()


@pytest.fixture(scope="module")
def lenet(tmp_path_factory) -> Path:
    """The stock LeNet net on 64 random 'digits' (train and test), batches of 16, and a
    6-iteration solver that displays every 2 and tests every 3."""
    folder = tmp_path_factory.mktemp("lenet")
    labels = np.arange(64) % 10
    for name, seed in (("mnist_train_lmdb", 0), ("mnist_test_lmdb", 1)):
        make_lmdb(folder / name, image_stack(64, (1, 28, 28), seed), labels)
    net = LENET.replace("examples/mnist/", f"{folder}/")
    net = re.sub(r"batch_size: \d+", "batch_size: 16", net)
    (folder / "lenet_train_test.prototxt").write_text(net)
    (folder / "solver.prototxt").write_text(f"""
        net: "{folder}/lenet_train_test.prototxt"
        test_iter: 2  test_interval: 3
        base_lr: 0.01  momentum: 0.9  weight_decay: 0.0005
        lr_policy: "inv"  gamma: 0.0001  power: 0.75
        display: 2  max_iter: 6  snapshot_prefix: "{folder}/lenet"  random_seed: 5
    """)
    with captured_log(folder / "train.log"):
        assert cli.main(["solve", "--solver", str(folder / "solver.prototxt"),
                         "--log-json", str(folder / "train.jsonl")]) == 0
    return folder


def test_parse_log_writes_caffe_tables(lenet, tmp_path, capsys):
    """`brewnet parse_log LOG OUT_DIR` writes LOG.train (NumIters, Seconds, LearningRate,
    loss) and LOG.test (..., accuracy, loss) and prints their paths."""
    assert cli.main(["parse_log", str(lenet / "train.log"), str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "train.log.train"),
                                              str(tmp_path / "train.log.test")]
    train = (tmp_path / "train.log.train").read_text().splitlines()
    test = (tmp_path / "train.log.test").read_text().splitlines()
    assert train[0] == "NumIters,Seconds,LearningRate,loss"
    assert [line.split(",")[0] for line in train[1:]] == ["0.0", "2.0", "4.0"]
    assert test[0] == "NumIters,Seconds,LearningRate,accuracy,loss"
    assert [line.split(",")[0] for line in test[1:]] == ["0.0", "3.0", "6.0"]


def test_log_json_has_a_record_per_display_and_test(lenet):
    """--log-json: train records at 0, 2, 4 with images/s = iter/s x 16; test records at
    0, 3, 6."""
    records = [json.loads(line) for line in (lenet / "train.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["iteration"]) for r in records] == [
        ("test", 0), ("train", 0), ("train", 2), ("test", 3), ("train", 4), ("test", 6)]
    assert records[2]["images_per_s"] == pytest.approx(records[2]["iter_per_s"] * 16, abs=0.1)


def test_plot_writes_a_png(lenet, tmp_path, capsys):
    """`brewnet plot LOG OUT.png` draws the text log, and the JSON log too."""
    pytest.importorskip("matplotlib")
    for source in ("train.log", "train.jsonl"):
        out = tmp_path / f"{source}.png"
        assert cli.main(["plot", str(lenet / source), str(out)]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"


def test_test_scores_the_trained_weights(lenet, tmp_path):
    """`brewnet test` logs `Batch i, <out> = v` per batch and then each output's mean, the
    mean of the batch lines, with the loss weight shown for the loss."""
    with captured_log(tmp_path / "test.log"):
        assert cli.main(["test", "--model", str(lenet / "lenet_train_test.prototxt"),
                         "--weights", str(lenet / "lenet_iter_6.caffemodel"),
                         "--iterations", "3"]) == 0
    text = (tmp_path / "test.log").read_text()
    assert "Use CPU." in text and "Running for 3 iterations." in text
    batches = re.findall(r"\] Batch (\d+), (\w+) = (\S+)", text)
    assert [(i, name) for i, name, _ in batches] == [
        (str(i), name) for i in range(3) for name in ("accuracy", "loss")]
    accuracy = float(re.search(r"\] accuracy = (\S+)\n", text).group(1))
    assert accuracy == pytest.approx(np.mean([float(v) for _, n, v in batches
                                              if n == "accuracy"]), abs=1e-5)
    loss = re.search(r"\] loss = (\S+) \(\* 1 = (\S+) loss\)\n", text)
    assert loss.group(1) == loss.group(2)
    assert re.search(r"\] Loss: " + re.escape(loss.group(1)) + "\n", text)


def test_time_reports_every_lenet_layer(lenet, tmp_path):
    """`brewnet time` on the LeNet example: Caffe's per-layer forward/backward lines for each
    of its 9 layers, the averaged passes, and brewnet's share-and-memory table."""
    with captured_log(tmp_path / "time.log"):
        assert cli.main(["time", "--model", str(lenet / "lenet_train_test.prototxt"),
                         "--iterations", "2"]) == 0
    text = (tmp_path / "time.log").read_text()
    layers = ("mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss")
    for name in layers:
        assert re.search(rf"\]\s+{name}\tforward: [\d.e-]+ ms\.\n", text), name
        assert re.search(rf"\]\s+{name}\tbackward: [\d.e-]+ ms\.\n", text), name
        assert re.search(rf"\]\s+{name}\tshare: [\d.]+%\tmemory: ", text), name
    assert re.search(r"Average Forward-Backward: [\d.]+ ms\.", text)


def test_draw_and_check_take_the_lenet_example(lenet, tmp_path, capsys):
    """`brewnet draw` writes LeNet's graph (.dot needs no Graphviz) with the conv1 shape on an
    edge, and `brewnet check` finds LeNet clean with its 431,080 parameters."""
    pytest.importorskip("pydot")
    net = str(lenet / "lenet_train_test.prototxt")
    out = tmp_path / "lenet.dot"
    assert cli.main(["draw", net, str(out), "--phase", "TRAIN"]) == 0
    assert "16×20×24×24" in out.read_text(encoding="utf-8")
    assert cli.main(["check", net]) == 0
    assert "parameters: 431,080" in capsys.readouterr().out


def test_device_query_lists_numpy_and_cupy(capsys):
    """`brewnet device_query` prints the NumPy/BLAS lines and a CuPy line (devices or why
    not)."""
    assert cli.main(["device_query"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("NumPy ") and out[2].startswith("  BLAS: ")
    assert any(line.startswith("CuPy") for line in out)


@pytest.mark.parametrize("args,message", [
    (["parse_log", "missing.log", "."], "missing.log: no such log file"),
    (["plot", "{empty}", "out.png"], "no train or test outputs to plot"),
    (["test", "--model", "m.prototxt", "--weights", "w", "--iterations", "0"],
     "--iterations 0: give a positive number of batches"),
])
def test_bad_input_is_one_line(args, message, tmp_path, capsys):
    """Each failure is one `brewnet: error:` line naming the file or flag at fault."""
    empty = tmp_path / "empty.log"
    empty.write_text("I1124 12:00:00.000000 1 x.py:1] Solving nothing\n")
    args = [a.replace("{empty}", str(empty)) for a in args]
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brewnet: error: ") and message in err[0]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_solve_on_a_terminal_shows_the_progress_line(tmp_path):
    """With stderr on a terminal, `brewnet solve` draws the progress line (iteration of
    max_iter, loss, images/s) and still prints the log lines above it."""
    pytest.importorskip("tqdm")
    solver = write_tiny(tmp_path)
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "brewnet", "solve", "--solver", str(solver)],
                            stdout=subprocess.DEVNULL, stderr=follower, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "Iteration 12/12" in text and "images/s" in text and "loss = " in text
    assert "Optimization Done." in text
