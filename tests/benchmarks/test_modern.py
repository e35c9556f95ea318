"""benchmarks.modern at tiny sizes: every modern net trains and infers in brewnet and agrees
with its PyTorch twin and with onnxruntime on brewnet's ONNX export (and OpenCV DNN on its
deploy prototxt and caffemodel, where an OpenCV with the Caffe importer is installed)."""

import re
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from benchmarks import modern
from benchmarks.modern_nets import googlenet
from brewnet.proto import caffe_pb2

FIXTURES = Path(__file__).parents[1] / "net" / "fixtures"


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


def test_two_thread_runs_say_how_the_second_core_stood_after_each_net(monkeypatch, capsys):
    """With 2 threads among the counts, each net's rows end with the second core's reading
    (this VM's second vCPU comes and goes); with 1 thread only, no such line."""
    from benchmarks import machine

    if machine.second_core_reading() is None:
        pytest.skip("one CPU, or a BLAS whose threads cannot be set")
    monkeypatch.setattr(modern, "torch_or_none", lambda threads: None)
    monkeypatch.setattr(modern, "_onnx_runner", lambda net, threads: None)
    monkeypatch.setattr(modern, "_opencv_runner", lambda *args: None)
    monkeypatch.setattr(modern, "second_core_reading", lambda: 1.5)
    args = ["--only", "infer", "--nets", "cifar10_quick", "--batches", "1", "--rounds", "1"]
    assert modern.main([*args, "--threads", "1,2"]) == 0
    assert "cifar10_quick: second core 1.50 after its rows" in capsys.readouterr().out
    assert modern.main([*args, "--threads", "1"]) == 0
    assert "after its rows" not in capsys.readouterr().out


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


def _bvlc_form(layer: caffe_pb2.LayerParameter, renames: dict[str, str]
               ) -> caffe_pb2.LayerParameter:
    """``layer`` with BVLC's names for the benchmark's, its lr/decay multipliers dropped and
    fields spelled at their default values cleared (pad 0, stride 1, loss weight 1, a
    constant-0 bias filler), so two spellings of one layer compare equal."""
    layer = caffe_pb2.LayerParameter.FromString(layer.SerializeToString())
    layer.ClearField("param")
    layer.bottom[:] = [renames.get(b, b) for b in layer.bottom]
    layer.top[:] = [renames.get(t, t) for t in layer.top]
    conv = layer.convolution_param
    for field, default in (("pad", 0), ("stride", 1)):
        if list(getattr(conv, field)) == [default]:
            conv.ClearField(field)
    if list(layer.loss_weight) == [1]:
        layer.ClearField("loss_weight")
    ip = layer.inner_product_param
    if ip.bias_filler == caffe_pb2.FillerParameter(type="constant", value=0):
        ip.ClearField("bias_filler")
    return layer


def test_googlenet_is_bvlcs():
    """modern_nets.googlenet at 224x224 has every layer of BVLC's bvlc_googlenet train net
    (tests/net/fixtures, accuracy layers aside) in its order, with the same parameters and
    wiring; only the main classifier and losses carry the benchmark's names. Its deploy net
    is the same without the two auxiliary heads, ending in a Softmax."""
    with open(FIXTURES / "googlenet_train.prototxt") as f:
        bvlc = text_format.Parse(f.read(), caffe_pb2.NetParameter())
    renames = {"fc": "loss3/classifier", "loss": "loss3/loss3", "loss1/loss": "loss1/loss1",
               "loss2/loss": "loss2/loss1"}
    theirs = [_bvlc_form(layer, {}) for layer in bvlc.layer
              if layer.type not in ("Input", "Accuracy")]
    for layer in theirs:
        layer.name = ""  # BVLC names a loss layer apart from its top; NetSpec cannot
    mine = [_bvlc_form(layer, renames) for layer in googlenet(True, batch=1).layer[1:]]
    for layer in mine:
        layer.name = ""
    assert len(mine) == len(theirs) == 158
    for a, b in zip(mine, theirs, strict=True):
        assert a == b, f"{a}\nagainst BVLC's\n{b}"
    deploy = googlenet(False, batch=1).layer
    assert [layer.type for layer in deploy] == (
        ["Input"] + [layer.type for layer in mine
                     if not layer.top[0].startswith(("loss1", "loss2"))][:-1] + ["Softmax"])


def test_googlenet_trains_and_infers_as_its_peers(monkeypatch, capsys):
    """GoogLeNet at 64x64 (the last pooling global over the 2x2 map), batch 2, dropout ratios
    set to 0 so both frameworks draw no masks: the twin's loss, 0.3 times each auxiliary head's
    plus the main head's, is brewnet's within 1e-4, and every peer's deploy output brewnet's
    within 1e-6."""
    pytest.importorskip("torch")

    def no_dropout(train: bool, **kwargs):
        param = googlenet(train, **kwargs)
        for layer in param.layer:
            if layer.type == "Dropout":
                layer.dropout_param.dropout_ratio = 0
        return param
    monkeypatch.setitem(modern.NETS, "googlenet", no_dropout)
    assert modern.main(["--quick", "--nets", "googlenet"]) == 0
    out = capsys.readouterr().out
    losses = [float(d) for d in re.findall(r"\|loss diff\| (\S+)", out)]
    assert len(losses) == 1 and losses[0] < 1e-4
    diffs = [float(d) for d in re.findall(r"\(diff (\S+)\)", out)]
    assert len(diffs) >= 2 and max(diffs) < 1e-6


def test_twin_across_channels_lrn_is_caffes():
    """torch's LocalResponseNorm, which the twin uses for ACROSS_CHANNELS, gives brewnet's LRN
    layer's values: both divide alpha by local_size and pad the channel window with zeros
    (checked at alpha 2 and k 2, where the normalization matters; GoogLeNet's 1e-4 hides
    it)."""
    torch = pytest.importorskip("torch")
    from brewnet.blob import Blob
    from tests.gradcheck import make_layer, setup_layer

    layer = make_layer('type: "LRN" lrn_param { local_size: 5 alpha: 2 beta: 0.75 k: 2 }')
    x = np.random.default_rng(0).normal(0, 2, (2, 7, 4, 3)).astype(np.float32)
    bottom = [Blob(x.shape)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    twin = torch.nn.LocalResponseNorm(5, 2.0, 0.75, 2.0)(torch.from_numpy(x)).numpy()
    squares = np.pad(x * x, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(squares[:, i:i + 7] for i in range(5))
    assert np.allclose(top[0].data, x * (2 + 2 / 5 * window) ** -0.75, rtol=1e-5)  # Caffe's
    assert np.abs(top[0].data - x * (2 + 2 * window) ** -0.75).max() > 0.01  # not alpha undivided
    np.testing.assert_allclose(twin, top[0].data, rtol=1e-5, atol=1e-6)
