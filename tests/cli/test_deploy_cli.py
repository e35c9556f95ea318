"""``brewnet deploy TRAIN_VAL.prototxt [-o OUT] [--batch N] [--shape TOP=C,H,W]``
(brewnet/cli/deploy.py), on the repository's own LeNet train_val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brewnet.cli.main import main
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.net import TEST, Net
from brewnet.proto.textio import read_net

MNIST = Path(__file__).resolve().parents[2] / "examples" / "mnist"
TRAIN_VAL = MNIST / "lenet_train_test.prototxt"


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory where the train_val's relative LMDB paths do not exist."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_deploy_writes_the_net_with_its_preprocessing(elsewhere, capsys):
    """-o writes the deploy net headed by the preprocessing comment; the command prints the
    same preprocessing; the file reads back as LeNet's hand-written deploy net."""
    out = elsewhere / "deploy.prototxt"
    assert main(["deploy", str(TRAIN_VAL), "-o", str(out), "--batch", "64",
                 "--shape", "data=1,28,28"]) == 0
    printed = capsys.readouterr().out
    assert "Wrote" in printed and "  data (64, 1, 28, 28): multiply by 0.00390625" in printed
    text = out.read_text()
    assert text.startswith(f"# Deploy net derived from {TRAIN_VAL} by `brewnet deploy`.")
    assert "#   data (64, 1, 28, 28): multiply by 0.00390625\n" in text
    derived, expected = read_net(out), read_net(MNIST / "lenet.prototxt")
    assert [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in derived.layer] == [
        (lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in expected.layer]
    assert derived.layer[0].input_param == expected.layer[0].input_param


def test_deploy_prints_to_stdout_and_shapes_from_the_source(elsewhere, capsys):
    """Without -o the prototxt goes to standard output; with the source present, the input
    takes its first record's shape and the TEST batch size."""
    source = elsewhere / "examples" / "mnist" / "mnist_test_lmdb"
    source.parent.mkdir(parents=True)
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    write_lmdb(source, [(f"{i:08d}", array_to_datum(image, 0)) for i in range(2)])
    assert main(["deploy", str(TRAIN_VAL)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Deploy net derived from")
    assert "#   data (100, 1, 28, 28): multiply by 0.00390625" in text
    deploy = elsewhere / "deploy.prototxt"
    deploy.write_text(text)
    net = Net(str(deploy), TEST)
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert list(net.blobs["prob"].shape) == [100, 10]


@pytest.mark.parametrize("args, message", [
    ([], "layer 'mnist' (Data): LMDB 'examples/mnist/mnist_test_lmdb' does not exist"),
    (["--batch", "0", "--shape", "data=1,28,28"], "the batch size (--batch, batch=) must be "
     "positive, got 0"),
    (["--shape", "label=1"], "a shape is given for 'label', which is not among the deploy "
     "net's data inputs (data)"),
], ids=["no-source", "batch", "shape-name"])
def test_bad_input_is_one_line(elsewhere, capsys, args, message):
    """Each bad input is exit status 1 and one line naming the fault and the fix."""
    assert main(["deploy", str(TRAIN_VAL), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("brewnet: error: ") and message in err


def test_deploy_refuses_to_overwrite_its_train_val(elsewhere, capsys):
    """-o naming the train_val itself is refused before anything is written."""
    train_val = elsewhere / "train_val.prototxt"
    train_val.write_text(TRAIN_VAL.read_text())
    assert main(["deploy", str(train_val), "-o", str(train_val), "--shape",
                 "data=1,28,28"]) == 1
    assert "is the train_val net itself" in capsys.readouterr().err
    assert train_val.read_text() == TRAIN_VAL.read_text()


def test_a_malformed_shape_is_a_usage_error(elsewhere, capsys):
    """--shape must be TOP=DIM,...: argparse's usage error (status 2) says the form."""
    with pytest.raises(SystemExit) as exit_:
        main(["deploy", str(TRAIN_VAL), "--shape", "data=1,x"])
    assert exit_.value.code == 2
    assert "'data=1,x' is not TOP=DIM,DIM,..." in capsys.readouterr().err


AUTOENCODER = (Path(__file__).resolve().parents[3] / "shared" / "reference" / "bvlc"
               / "examples" / "mnist" / "mnist_autoencoder.prototxt")


@pytest.mark.skipif(not AUTOENCODER.is_file(), reason="../shared/reference/bvlc is absent")
def test_stage_picks_the_data_layer(elsewhere, capsys):
    """--stage (Caffe's comma-separated flag) chooses among data layers under stage rules."""
    args = ["deploy", str(AUTOENCODER), "--shape", "data=1,28,28"]
    assert main(args) == 1
    assert "--stage" in capsys.readouterr().err
    assert main([*args, "--stage", "test-on-test", "-o", "ae.prototxt"]) == 0
    assert read_net(elsewhere / "ae.prototxt").layer[0].type == "Input"
