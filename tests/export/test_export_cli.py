"""``brewnet export onnx NET WEIGHTS OUT.onnx [--batch N] [--shape TOP=C,H,W]``
(brewnet/cli/export.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from brewnet.cli.main import main  # noqa: E402
from brewnet.net import TEST, Net  # noqa: E402

LENET = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "lenet.prototxt"


def test_export_onnx_round_trip(tmp_path, capsys):
    """Weights saved by brewnet, exported at batch 3 by the command, give in onnxruntime the
    probabilities brewnet computes from the same .caffemodel; the command prints a summary."""
    trained = Net(str(LENET), TEST)
    rng = np.random.default_rng(0)
    for blobs in trained.params.values():
        for b in blobs:
            b.data[...] = (0.2 * rng.standard_normal(b.shape)).astype(np.float32)
    weights, out = tmp_path / "lenet.caffemodel", tmp_path / "lenet.onnx"
    trained.save(weights)
    assert main(["export", "onnx", str(LENET), str(weights), str(out), "--batch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "lenet.onnx" in printed and "data [3, 1, 28, 28]" in printed and "prob" in printed

    net = Net(str(LENET), TEST, weights=str(weights))
    net.blobs["data"].reshape(3, 1, 28, 28)
    net.reshape()
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    expected = np.array(net.forward(data=x)["prob"])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(["prob"], {"data": x})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_export_errors_are_one_line(tmp_path, capsys):
    """A net with a layer ONNX cannot express, and a bad --batch, fail with exit status 1 and
    a one-line message naming the fault."""
    model = tmp_path / "train.prototxt"
    model.write_text("""
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" }
""")
    net = Net(str(model), TEST)
    weights = tmp_path / "w.caffemodel"
    net.save(weights)
    out = tmp_path / "x.onnx"
    assert main(["export", "onnx", str(model), str(weights), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer 'loss' (SoftmaxWithLoss): has no ONNX mapping" in err
    assert not out.exists()
    assert main(["export", "onnx", str(model), str(weights), str(out), "--batch", "0"]) == 1
    assert "--batch must be a positive number" in capsys.readouterr().err


def test_train_val_net_is_exported_as_its_deploy_net(tmp_path, capsys, monkeypatch):
    """Given LeNet's train_val definition, the command exports the deploy net derived from it
    (brewnet/net/deploy.py), which scores as the hand-written lenet.prototxt with the same
    weights, and prints the preprocessing its input needs. Where the LMDB is absent, the
    record shape comes from --shape, and without it the error asks for --shape."""
    monkeypatch.chdir(tmp_path)  # the relative LMDB paths do not exist here
    train_val = LENET.parent / "lenet_train_test.prototxt"
    trained = Net(str(LENET), TEST)
    rng = np.random.default_rng(0)
    for blobs in trained.params.values():
        for b in blobs:
            b.data[...] = (0.2 * rng.standard_normal(b.shape)).astype(np.float32)
    weights, out = tmp_path / "w.caffemodel", tmp_path / "x.onnx"
    trained.save(weights)
    assert main(["export", "onnx", str(train_val), str(weights), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer 'mnist' (Data)" in err and "--shape data=C,H,W" in err
    assert not out.exists()

    assert main(["export", "onnx", str(train_val), str(weights), str(out), "--batch", "2",
                 "--shape", "data=1,28,28"]) == 0
    printed = capsys.readouterr().out
    assert "data [2, 1, 28, 28]" in printed and "outputs prob" in printed
    assert "data (2, 1, 28, 28): multiply by 0.00390625" in printed
    x = rng.random((2, 1, 28, 28), dtype=np.float32)
    trained.blobs["data"].reshape(2, 1, 28, 28)
    trained.reshape()
    expected = np.array(trained.forward(data=x)["prob"])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(["prob"], {"data": x})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_shape_is_refused_for_a_deploy_net(tmp_path, capsys):
    """--shape describes a train_val's data records; given with a deploy net it is an error,
    not silently ignored."""
    weights = tmp_path / "w.caffemodel"
    Net(str(LENET), TEST).save(weights)
    assert main(["export", "onnx", str(LENET), str(weights), str(tmp_path / "x.onnx"),
                 "--shape", "data=1,28,28"]) == 1
    assert "--shape gives the records of a train_val's data layers" in capsys.readouterr().err
