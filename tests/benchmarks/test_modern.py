"""benchmarks.modern at tiny sizes: every modern net trains and infers in brewnet and agrees
with its PyTorch twin and with onnxruntime on brewnet's ONNX export (and OpenCV DNN on its
deploy prototxt and caffemodel, where an OpenCV with the Caffe importer is installed)."""

import re

import numpy as np
import pytest

from benchmarks import modern


def test_quick_run_agrees_with_the_peers(capsys):
    """ResNet-50, MobileNet v2, CIFAR-10 quick and CIFAR-10 full (WITHIN_CHANNEL LRN, which
    the twin composes from torch ops) at 64x64, batch 2: the twin's first loss is brewnet's
    within 1e-3, and both peers' deploy outputs are brewnet's within 1e-6."""
    pytest.importorskip("torch")
    assert modern.main(["--quick", "--nets",
                        "resnet50,mobilenet_v2,cifar10_quick,cifar10_full"]) == 0
    out = capsys.readouterr().out
    losses = [float(d) for d in re.findall(r"\|loss diff\| (\S+)", out)]
    assert len(losses) == 4 and max(losses) < 1e-3
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


def test_twin_within_channel_lrn_is_caffes():
    """The twin's WITHIN_CHANNEL LRN (torch has none) gives brewnet's LRN layer's values, at
    an alpha large enough for the normalization to matter (CIFAR-10 full's 5e-5 hides it)."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_twin import _within_channel_lrn
    from brewnet.blob import Blob
    from tests.gradcheck import make_layer, setup_layer

    layer = make_layer('type: "LRN" lrn_param { local_size: 3 alpha: 2 beta: 0.75 '
                       "norm_region: WITHIN_CHANNEL }")
    x = np.random.default_rng(0).normal(0, 2, (2, 3, 7, 6)).astype(np.float32)
    bottom = [Blob(x.shape)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    twin = _within_channel_lrn(torch, 3, 2.0, 0.75)(torch.from_numpy(x)).numpy()
    assert np.abs(top[0].data - x).max() > 0.1  # the normalization changes the values
    np.testing.assert_allclose(twin, top[0].data, rtol=1e-5, atol=1e-6)
