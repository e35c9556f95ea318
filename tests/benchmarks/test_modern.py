"""benchmarks.modern at tiny sizes: every modern net trains and infers in brewnet and agrees
with its PyTorch twin and with onnxruntime on brewnet's ONNX export (and OpenCV DNN on its
deploy prototxt and caffemodel, where an OpenCV with the Caffe importer is installed)."""

import re

import pytest

from benchmarks import modern


def test_quick_run_agrees_with_the_peers(capsys):
    """ResNet-50, MobileNet v2 and CIFAR-10 quick at 64x64, batch 2: the twin's first loss is
    brewnet's within 1e-3, and both peers' deploy outputs are brewnet's within 1e-6."""
    pytest.importorskip("torch")
    assert modern.main(["--quick", "--nets", "resnet50,mobilenet_v2,cifar10_quick"]) == 0
    out = capsys.readouterr().out
    losses = [float(d) for d in re.findall(r"\|loss diff\| (\S+)", out)]
    assert len(losses) == 3 and max(losses) < 1e-3
    diffs = [float(d) for d in re.findall(r"\(diff (\S+)\)", out)]
    assert len(diffs) >= 3 and max(diffs) < 1e-6


def test_dropout_nets_infer_as_their_peers(capsys):
    """SqueezeNet 1.1 (fire modules: Concat) and CaffeNet (LRN, grouped convolutions) at
    64x64: every peer's deploy output is brewnet's within 1e-6 (Dropout is the identity at
    TEST in the twin too). Their training losses are not compared: the dropout masks
    differ."""
    pytest.importorskip("torch")
    assert modern.main(["--quick", "--only", "infer", "--nets", "squeezenet1_1,caffenet"]) == 0
    diffs = [float(d) for d in re.findall(r"\(diff (\S+)\)", capsys.readouterr().out)]
    assert len(diffs) >= 2 and max(diffs) < 1e-6


def test_runs_without_peers(monkeypatch, capsys):
    """Without torch (and so with no twin) brewnet alone is timed."""
    monkeypatch.setattr(modern, "torch_or_none", lambda threads: None)
    monkeypatch.setattr(modern, "_onnx_runner", lambda net, threads: None)
    monkeypatch.setattr(modern, "_opencv_runner", lambda *args: None)
    assert modern.main(["--quick", "--nets", "cifar10_quick"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 thread\(s\)  brewnet +[0-9.]+ +[0-9.]+$", out, re.M)
    assert "pytorch" not in out.split("skipped")[-1]
