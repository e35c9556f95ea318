"""``brewnet check``: every problem on stderr, the shape table and parameter count on stdout,
exit status 0 when clean; LeNet's own example files check clean, without warnings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from brewnet.cli.main import main
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mnist"

LENET_TRAIN_ROWS = [
    "mnist  Data             data   (64, 1, 28, 28)",
    "conv1  Convolution      conv1  (64, 20, 24, 24)      520",
    "pool2  Pooling          pool2  (64, 50, 4, 4)",
    "ip1    InnerProduct     ip1    (64, 500)         400,500",
    "loss   SoftmaxWithLoss  loss   ()",
]


@pytest.fixture
def lenet_dir(tmp_path, monkeypatch):
    """LeNet's example files in a fresh folder, with 3-record stand-ins for the MNIST LMDBs
    (check reads only the first record of each, for its shape)."""
    folder = tmp_path / "examples" / "mnist"
    folder.mkdir(parents=True)
    for name in ("lenet_train_test.prototxt", "lenet_solver.prototxt", "lenet.prototxt"):
        shutil.copy(EXAMPLES / name, folder / name)
    images = np.zeros((3, 1, 28, 28), np.uint8)
    for split in ("train", "test"):
        write_lmdb(folder / f"mnist_{split}_lmdb",
                   ((f"{i:08d}", array_to_datum(img, i)) for i, img in enumerate(images)))
    monkeypatch.chdir(tmp_path)
    return folder


def test_lenet_train_test_checks_clean(lenet_dir, capsys):
    """Both phases compile: shape table rows as Caffe infers them, 431,080 parameters, no
    error and no warning, exit status 0."""
    assert main(["check", "examples/mnist/lenet_train_test.prototxt"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "examples/mnist/lenet_train_test.prototxt (TRAIN): 9 layers" in out
    assert "examples/mnist/lenet_train_test.prototxt (TEST): 12 layers" in out
    for row in LENET_TRAIN_ROWS:
        assert "  " + row in out.splitlines()
    assert out.count("parameters: 431,080") == 2
    assert out.rstrip().endswith("0 error(s), 0 warning(s)")


def test_lenet_phase_option_and_deploy_net(lenet_dir, capsys):
    """--phase picks one phase; a deploy net (no phase rules) is checked in TEST alone."""
    assert main(["check", "examples/mnist/lenet_train_test.prototxt", "--phase", "TEST"]) == 0
    out = capsys.readouterr().out
    assert "(TRAIN)" not in out and "(TEST): 12 layers" in out
    assert main(["check", "examples/mnist/lenet.prototxt"]) == 0
    out = capsys.readouterr().out
    assert "(TEST): 9 layers" in out and "(TRAIN)" not in out
    assert "prob   Softmax       prob   (64, 10)" in out


def test_lenet_solver_checks_clean(lenet_dir, capsys):
    """A solver file is checked itself and then its train net and test net, cleanly."""
    assert main(["check", "examples/mnist/lenet_solver.prototxt"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "examples/mnist/lenet_train_test.prototxt (train net): 9 layers" in out
    assert "examples/mnist/lenet_train_test.prototxt (test net #0): 12 layers" in out
    assert out.rstrip().endswith("0 error(s), 0 warning(s)")
    assert not list(lenet_dir.glob("*.caffemodel"))  # nothing was trained or written


def test_every_problem_is_listed(tmp_path, capsys):
    """Problems in independent layers are all reported, each located; layers downstream of a
    broken one are skipped rather than reported again; exit status 1."""
    net = tmp_path / "net.prototxt"
    net.write_text('''name: "two faults"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "a" type: "Convolutoin" bottom: "data" top: "a" }
layer { name: "after_a" type: "ReLU" bottom: "a" top: "b" }
layer { name: "c" type: "ReLU" bottom: "dta" top: "c" }
layer { name: "d" type: "ReLU" bottom: "data" top: "d" }
''')
    assert main(["check", str(net)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith(f"brewnet: error: {net}:4:1: layer 'a' (Convolutoin)")
    assert lines[1].startswith(f"brewnet: error: {net}:6:")
    assert "did you mean 'data'?" in lines[1]
    assert len(lines) == 2 and "after_a" not in err
    assert "  d      ReLU   d     (1, 1, 8, 8)" in out
    assert out.rstrip().endswith("2 error(s), 0 warning(s)")


def test_warnings_alone_exit_zero(tmp_path, capsys):
    """A dangling computation in a TRAIN net is a warning: printed, exit status 0."""
    net = tmp_path / "net.prototxt"
    net.write_text('''layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 } }
layer { name: "side" type: "InnerProduct" bottom: "data" top: "side"
        inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''')
    assert main(["check", str(net), "--phase", "TRAIN"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"brewnet: warning: {net}:5:58: layer 'side' (InnerProduct): top "
                          "'side' is used by no layer and adds no loss")


def test_a_file_that_does_not_parse(tmp_path, capsys):
    """A parse error is the one problem reported; no table."""
    net = tmp_path / "net.prototxt"
    net.write_text('layer { name: "x" type: "ReLU" bottom: "a" top: "b" \n')
    assert main(["check", str(net)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"brewnet: error: {net}:1:49: layer 'x' (ReLU): Expected \"}}\"")
    assert "layers" not in out and "1 error(s)" in out


def test_solver_nets_sharing_a_broken_layer_report_it_once(tmp_path, capsys, monkeypatch):
    """A solver's train and test nets built from one file: a fault in a layer both contain is
    one line, and the solver's own problems come with it; exit status 1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 2 dim: 3 } } }\n"
        'layer { name: "r" type: "ReLU" bottom: "dta" top: "r" }\n')
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "exp"\ntest_iter: 1\ntest_interval: 1\n')
    assert main(["check", "solver.prototxt"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "brewnet: error: solver.prototxt:3:1: lr_policy 'exp' needs `gamma`, which is not set, "
        "so base_lr·gamma^iter is 0 from the second iteration on; add e.g. gamma: 0.1",
        "brewnet: error: net.prototxt:3:32: layer 'r' (ReLU): bottom 'dta' (index 0) is not "
        "produced by any layer; did you mean 'data'?"]


@pytest.mark.parametrize("rule", ["RMSProp", "Adamm"])
def test_update_rule_problems_are_located_and_refused_by_solve(tmp_path, capsys, monkeypatch,
                                                               rule):
    """RMSProp with momentum 0.9, rms_decay 1.5 and regularization_type "L3": check reports
    each at its line (type "Adamm": the type, with a suggestion) and exits 1; `brewnet solve`
    refuses the file with check's first error, located, before any net is built."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 2 dim: 3 } } }\n")
    (tmp_path / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\ntype: "{rule}"\n'
        'momentum: 0.9\nrms_decay: 1.5\nregularization_type: "L3"\n')
    assert main(["check", "solver.prototxt"]) == 1
    out, err = capsys.readouterr()
    first = "brewnet: error: solver.prototxt:"
    if rule == "RMSProp":
        assert err.splitlines() == [
            f"{first}7:1: unknown regularization_type 'L3'; use one of: L2, L1",
            f"{first}5:1: momentum cannot be used with RMSProp (got momentum: "
            "0.8999999761581421); remove the momentum field",
            f"{first}6:1: rms_decay must be in [0, 1), got 1.5"]
    else:
        assert err.splitlines() == [
            f"{first}4:1: unknown solver type 'Adamm'; did you mean 'Adam'? known types: SGD, "
            "Nesterov, AdaGrad, RMSProp, AdaDelta, Adam",
            f"{first}7:1: unknown regularization_type 'L3'; use one of: L2, L1"]
    assert out.rstrip().endswith(f"{len(err.splitlines())} error(s), 0 warning(s)")
    assert main(["solve", "--solver", "solver.prototxt"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == err.splitlines()[0]
