"""Faults and bad input (issue 16): an empty net, a folder or a solver state given as weights.
Each is one line naming the file and the fix, through the API and the CLI."""

from __future__ import annotations

import re

import pytest

from brewnet import TEST, Net
from brewnet.cli.main import main
from brewnet.errors import NetError, WeightsError
from brewnet.proto import caffe_pb2
from brewnet.solver import get_solver
from brewnet.solver.snapshot import write_state

NET = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
EMPTY = re.escape("defines no layers; is this the right (or a complete) prototxt?")


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.prototxt").write_text("# nothing yet\n")
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "empty.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 2 '
        'snapshot_prefix: "s"\n')
    return tmp_path


def test_empty_net_is_an_error_naming_the_file(files):
    with pytest.raises(NetError, match=f"^empty.prototxt: the net {EMPTY}$"):
        Net("empty.prototxt", TEST)
    with pytest.raises(NetError, match=f"^the net {EMPTY}$"):
        Net(caffe_pb2.NetParameter(), TEST)


def test_solver_on_an_empty_net_does_not_train(files):
    with pytest.raises(NetError, match=f"empty.prototxt: the net {EMPTY}"):
        get_solver("solver.prototxt")
    assert main(["solve", "--solver", "solver.prototxt"]) == 1
    assert not list(files.glob("s_iter_*"))


def test_check_reports_an_empty_net(files, capsys):
    assert main(["check", "empty.prototxt"]) == 1
    assert re.search(f"brewnet: error: empty.prototxt: the net {EMPTY}", capsys.readouterr().err)


def test_folder_as_weights_says_it_is_a_folder(files, capsys):
    (files / "models").mkdir()
    with pytest.raises(WeightsError, match="^models: is a folder, not a weights file; pass "
                       "the .caffemodel inside it$"):
        Net("net.prototxt", TEST, weights="models")
    assert main(["test", "--model", "net.prototxt", "--weights", "models",
                 "--iterations", "1"]) == 1
    assert "models: is a folder" in capsys.readouterr().err


def test_solverstate_as_weights_says_to_use_snapshot(files, capsys):
    write_state("s_iter_7.solverstate", 7, "s_iter_7.caffemodel", 0, [])
    message = ("s_iter_7.solverstate: this is a .solverstate (training state at iteration 7), "
               "not weights; resume from it with --snapshot (Solver.restore) (or its weights, "
               "s_iter_7.caffemodel, as weights)")
    with pytest.raises(WeightsError) as info:
        Net("net.prototxt", TEST, weights="s_iter_7.solverstate")
    assert str(info.value) == message
    (files / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 2 snapshot_prefix: "s"')
    assert main(["solve", "--solver", "solver.prototxt", "--weights",
                 "s_iter_7.solverstate"]) == 1
    assert message in capsys.readouterr().err


def test_a_caffemodel_still_loads(files):
    net = Net("net.prototxt", TEST)
    net.save("w.caffemodel")
    Net("net.prototxt", TEST, weights="w.caffemodel")
