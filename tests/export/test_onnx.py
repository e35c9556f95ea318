"""ONNX export (brewnet/export/): the exported model, run in onnxruntime, gives brewnet's
TEST-phase forward to 1e-4, for LeNet, a ResNet block, a CaffeNet-like net with Caffe's pooling
sizes, and the smaller layer families; layers without a mapping are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from brewnet.errors import BrewnetError, NetError  # noqa: E402
from brewnet.export import export_onnx, net_to_onnx  # noqa: E402
from brewnet.export.onnx_graph import CONVERTERS  # noqa: E402
from brewnet.net import TEST, Net  # noqa: E402
from brewnet.proto import caffe_pb2  # noqa: E402
from brewnet.proto.textio import parse_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LENET = ROOT / "examples" / "mnist" / "lenet.prototxt"
FIXTURES = ROOT / "tests" / "net" / "fixtures"


def _net(text: str) -> Net:
    return Net(parse_text(text, caffe_pb2.NetParameter()), TEST)


def _session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _inputs(net: Net, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(net.blobs[name].shape).astype(np.float32)
            for name in net.inputs}


def _randomize(net: Net, seed: int = 1) -> None:
    """Weights away from their fillers' constants (zero biases, unit scales) so that every
    parameter matters in the comparison."""
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            continue
        for b in blobs:
            b.data[...] = (0.3 * rng.standard_normal(b.shape)).astype(np.float32)


def _assert_same(net: Net, model, feeds: dict[str, np.ndarray] | None = None) -> None:
    """Every output of the net, by name, agrees to 1e-4 between brewnet and onnxruntime."""
    feeds = feeds or _inputs(net)
    expected = {k: np.array(v) for k, v in net.forward(**feeds).items()}
    session = _session(model)
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == sorted(net.outputs)
    for name, got in zip(names, session.run(names, feeds), strict=True):
        assert got.shape == expected[name].shape, name
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_lenet_round_trip():
    """LeNet (the MNIST example's deploy net) with filler weights exports, checks, and gives
    brewnet's class probabilities; the graph's input and output keep Caffe's blob names."""
    net = Net(str(LENET), TEST)
    _randomize(net)
    net.blobs["data"].reshape(4, 1, 28, 28)
    net.reshape()
    model = net_to_onnx(net)
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["prob"]
    assert {n.op_type for n in model.graph.node} == {"Conv", "MaxPool", "Flatten", "Gemm",
                                                     "Relu", "Softmax"}
    rng = np.random.default_rng(3)
    _assert_same(net, model, {"data": rng.random((4, 1, 28, 28), dtype=np.float32)})


RESNET_BLOCK = """
name: "block"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 4 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false
                      weight_filler { type: "msra" } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1"
  batch_norm_param { eps: 1e-3 } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false
                      weight_filler { type: "msra" } } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" }
layer { name: "scale2" type: "Scale" bottom: "conv2" top: "conv2" scale_param { bias_term: true } }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "conv2" top: "sum" }
layer { name: "relu" type: "ReLU" bottom: "sum" top: "sum" }
"""


def test_resnet_block_with_stored_batch_statistics():
    """conv-BN-Scale-ReLU-conv-BN-Scale + identity shortcut (Eltwise SUM) + ReLU: BatchNorm's
    stored sums are divided by their moving-average weight s (here 3.7, and 0 for a layer
    that never trained, whose statistics then read as mean 0, var 0), in-place tops are
    renamed, and the shortcut's Split is an Identity."""
    net = _net(RESNET_BLOCK)
    _randomize(net)
    rng = np.random.default_rng(7)
    mean = rng.standard_normal(4).astype(np.float32)
    var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    s = np.float32(3.7)
    bn1 = net.params["bn1"]
    bn1[0].data[...], bn1[1].data[...], bn1[2].data[...] = mean * s, var * s, s
    model = net_to_onnx(net)
    assert [o.name for o in model.graph.output] == ["sum"]
    _assert_same(net, model)
    out = net.forward(**_inputs(net))["sum"]
    assert np.all(out >= 0) and out.std() > 0.1


CAFFENET_LIKE = """
name: "caffenet_like"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 25 dim: 25 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 } }
# 12x12, kernel 3, stride 2: Caffe's ceil gives 6 where floor would give 5.
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "norm2" type: "LRN" bottom: "conv2" top: "norm2"
  lrn_param { local_size: 3 alpha: 0.8 beta: 0.75 norm_region: WITHIN_CHANNEL } }
# 6x6, kernel 3, stride 2, pad 1: 4 (floor: 3); the last window's divisor is clipped to 7.
layer { name: "pool2" type: "Pooling" bottom: "norm2" top: "pool2"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
# 4x4, kernel 3, stride 2, pad 2: ceil gives 4 but its last window would start in the right
# padding, so Caffe drops it: 3.
layer { name: "pool3a" type: "Pooling" bottom: "pool2" top: "pool3a"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 2 } }
layer { name: "pool3b" type: "Pooling" bottom: "pool2" top: "pool3b"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 2 } }
layer { name: "gpool" type: "Pooling" bottom: "norm2" top: "gpool"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "concat" type: "Concat" bottom: "pool3a" bottom: "pool3b" top: "concat" }
layer { name: "prod" type: "Eltwise" bottom: "pool3a" bottom: "pool3b" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "pool3a" bottom: "pool3b" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "wsum" type: "Eltwise" bottom: "prod" bottom: "max" top: "wsum"
  eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 } }
layer { name: "fc6" type: "InnerProduct" bottom: "concat" top: "fc6"
  inner_product_param { num_output: 10 } }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6"
  dropout_param { dropout_ratio: 0.5 } }
layer { name: "prob" type: "Softmax" bottom: "fc6" top: "prob" }
layer { name: "fc7" type: "InnerProduct" bottom: "wsum" top: "fc7"
  inner_product_param { num_output: 5 axis: 2 } }
layer { name: "prob7" type: "Softmax" bottom: "fc7" top: "prob7" softmax_param { axis: 2 } }
"""


def test_caffenet_like_net_with_caffe_pooling_sizes():
    """Grouped convolution, LRN across and within channels, MAX/AVE pooling where Caffe's
    ceil-mode size differs from floor, AVE with pad (Caffe's clipped divisor), a window that
    Caffe drops because it starts in the padding, global pooling, Concat, Eltwise PROD/MAX/SUM
    with coeffs, InnerProduct on axis 1 and 2, Dropout and Softmax on axis 1 and 2."""
    net = _net(CAFFENET_LIKE)
    _randomize(net)
    shapes = {name: tuple(net.blobs[name].shape) for name in ("pool1", "pool2", "pool3a")}
    assert shapes == {"pool1": (2, 8, 6, 6), "pool2": (2, 8, 4, 4), "pool3a": (2, 8, 3, 3)}
    model = net_to_onnx(net)
    assert sorted(o.name for o in model.graph.output) == ["gpool", "prob", "prob7"]
    _assert_same(net, model)


def _pooling_sweep(size: int, skip: set[str]) -> str:
    layers = [f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 '
              f'dim: 2 dim: {size} dim: {size + 1} }} }} }}']
    for pool in ("MAX", "AVE"):
        for mode in ("CEIL", "FLOOR"):
            for k in (1, 2, 3):
                for s in (1, 2, 3, 4):
                    for p in range(k):
                        name = f"{pool}_{mode}_k{k}_s{s}_p{p}"
                        if k > size + 2 * p or name in skip:
                            continue
                        layers.append(
                            f'layer {{ name: "{name}" type: "Pooling" bottom: "data" top: "{name}" '
                            f'pooling_param {{ pool: {pool} kernel_size: {k} stride: {s} pad: {p} '
                            f'round_mode: {mode} }} }}')
    return "\n".join(layers)


@pytest.mark.parametrize("size", [3, 4, 5, 6, 7])
def test_pooling_sizes_and_divisors_match_caffe(size):
    """Every kernel/stride/pad/rounding combination on small images: the exported MaxPool and
    AveragePool reproduce brewnet's (Caffe's) output sizes and values. The only layers refused
    are those whose last window Caffe places wholly past the image (unpadded, ceil rounding,
    stride > kernel), which ONNX cannot express."""
    refused: set[str] = set()
    while True:
        net = _net(_pooling_sweep(size, refused))
        try:
            model = net_to_onnx(net)
            break
        except NetError as e:
            assert "wholly outside the image" in str(e)
            refused.add(e.layer)
    for name in refused:
        kernel, stride = (int(x) for x in name.split("_k")[1].split("_p")[0].split("_s"))
        assert "CEIL" in name and name.endswith("_p0") and stride > kernel
    _assert_same(net, model)
    assert refused and len(net.outputs) + len(refused) == 96


MISC = """
name: "misc"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }
layer { name: "gain" type: "Input" top: "gain" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "dil" type: "Convolution" bottom: "data" top: "dil"
  convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2 stride: 1 } }
layer { name: "leaky" type: "ReLU" bottom: "dil" top: "dil" relu_param { negative_slope: 0.1 } }
layer { name: "prelu" type: "PReLU" bottom: "dil" top: "prelu" }
layer { name: "gate" type: "Scale" bottom: "prelu" bottom: "gain" top: "gate"
  scale_param { axis: 0 } }
layer { name: "shift" type: "Bias" bottom: "gate" top: "shift" }
layer { name: "sig" type: "Sigmoid" bottom: "shift" top: "sig" }
layer { name: "flat" type: "Flatten" bottom: "sig" top: "flat" }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
  inner_product_param { num_output: 6 transpose: true } }
layer { name: "tanh" type: "TanH" bottom: "fc" top: "fc" }
layer { name: "rs" type: "Reshape" bottom: "fc" top: "rs"
  reshape_param { shape { dim: 0 dim: 2 dim: 3 } } }
layer { name: "conv1d" type: "Convolution" bottom: "rs" top: "conv1d"
  convolution_param { num_output: 3 kernel_size: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
  convolution_param { num_output: 2 kernel_size: 4 stride: 2 pad: 1 group: 2 } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop"
  crop_param { axis: 2 offset: 3 offset: 2 } }
"""


def test_smaller_layer_families():
    """Dilated convolution, leaky ReLU, PReLU, Scale by a second bottom (axis 0), Bias,
    Sigmoid, TanH, Flatten, Reshape, InnerProduct with transpose: true, 1-d convolution,
    grouped Deconvolution (12x12 from 6x6) and Crop at per-axis offsets."""
    net = _net(MISC)
    assert tuple(net.blobs["up"].shape) == (2, 2, 12, 12)
    assert tuple(net.blobs["crop"].shape) == (2, 2, 6, 6)
    _randomize(net)
    _assert_same(net, net_to_onnx(net))


def test_layers_without_a_mapping_are_named():
    """A loss layer (not part of a deploy net) and STOCHASTIC pooling are refused with a
    NetError naming the layer and its type; so is a train-phase BatchNorm."""
    loss_net = _net("""
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" }
""")
    with pytest.raises(NetError, match=r"layer 'loss' \(SoftmaxWithLoss\): has no ONNX mapping"):
        net_to_onnx(loss_net)
    stochastic = _net("""
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 } }
""")
    with pytest.raises(NetError, match=r"layer 'pool' \(Pooling\): cannot export.*STOCHASTIC"):
        net_to_onnx(stochastic)
    batch_stats = _net("""
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
  batch_norm_param { use_global_stats: false } }
""")
    with pytest.raises(NetError, match=r"layer 'bn' \(BatchNorm\).*use_global_stats"):
        net_to_onnx(batch_stats)
    with pytest.raises(BrewnetError, match="opset 12 is too old"):
        net_to_onnx(batch_stats, opset=12)


@pytest.mark.parametrize("fixture", ["alexnet_deploy", "vgg16_deploy", "resnet50_deploy",
                                     "googlenet_train", "fcn_small_deploy"])
def test_zoo_layer_sets_have_converters(fixture):
    """Every layer type of the AlexNet/CaffeNet, VGG-16, ResNet-50, GoogLeNet and FCN
    definitions (GoogLeNet's losses aside: its deploy net drops them) has an ONNX converter."""
    param = parse_text((FIXTURES / f"{fixture}.prototxt").read_text(), caffe_pb2.NetParameter())
    types = {layer.type for layer in param.layer} - {"SoftmaxWithLoss"}
    assert types <= set(CONVERTERS)


def test_export_writes_a_loadable_file(tmp_path):
    """export_onnx writes the model to disk; onnx.load reads back the same graph."""
    net = _net(RESNET_BLOCK)
    path = tmp_path / "block.onnx"
    model = export_onnx(net, path)
    assert onnx.load(str(path)) == model


def _zoo_deploy(fixture: str) -> caffe_pb2.NetParameter:
    """The fixture at batch 1 as a deploy net: GoogLeNet's train definition loses its label
    input and its three losses (its deploy prototxt differs just so)."""
    param = parse_text((FIXTURES / f"{fixture}.prototxt").read_text(), caffe_pb2.NetParameter())
    keep = [layer for layer in param.layer if layer.type != "SoftmaxWithLoss"]
    del param.layer[:]
    param.layer.extend(keep)
    data = param.layer[0]
    del data.top[1:], data.input_param.shape[1:]
    data.input_param.shape[0].dim[0] = 1
    return param


@pytest.mark.slow
@pytest.mark.parametrize("fixture, logits", [("resnet50_deploy", "fc1000"),
                                             ("googlenet_train", "loss3/classifier")])
def test_zoo_nets_round_trip(fixture, logits):
    """ResNet-50 (with non-trivial BatchNorm statistics) and GoogLeNet at full size: the
    pre-softmax scores onnxruntime computes (read by blob name from the graph) agree with
    brewnet's to 1e-4 of their scale. (AlexNet's layer set is the CaffeNet-like test's.)"""
    net = Net(_zoo_deploy(fixture), TEST)
    rng = np.random.default_rng(0)
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            c = blobs[0].shape[0]
            blobs[0].data[...] = 0.4 * rng.standard_normal(c)
            blobs[1].data[...] = rng.uniform(1.0, 3.0, c)
            blobs[2].data[...] = 2.0
    model = net_to_onnx(net)
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        logits, onnx.TensorProto.FLOAT, net.blobs[logits].shape))
    feeds = _inputs(net)
    net.forward(**feeds)
    expected = np.array(net.blobs[logits].data)
    (got,) = _session(model).run([logits], feeds)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(scale, 1.0))
