"""The modern nets the speed benchmarks run, written with NetSpec: ResNet-50 (He et al.'s Caffe
layout: BatchNorm + Scale after every convolution, a 1x1 stride-2 projection per stage),
MobileNet v2 (Sandler et al.: inverted residuals with depthwise 3x3 convolutions, ReLU for
ReLU6 as Caffe ports do), SqueezeNet 1.1 (Iandola et al.: fire modules, a 1x1 classifier
convolution and global average pooling), GoogLeNet (Szegedy et al., BVLC's bvlc_googlenet:
nine inception modules, LRN after the stem) and CIFAR-10 quick and full (the Caffe examples'
layers); CaffeNet is read from ``benchmarks/nets/caffenet_deploy.prototxt``.

Each builder returns a NetParameter: ``train=True`` reads a DummyData batch and its labels and
ends in SoftmaxWithLoss; ``train=False`` is the deploy net, an Input blob and a Softmax.
Weights are drawn by the fillers (msra for convolutions), so no model file is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import text_format

from brewnet.netspec import NetSpec, Top
from brewnet.netspec import layers as L
from brewnet.netspec import params as P
from brewnet.proto import caffe_pb2

from . import REPO

_MSRA = {"type": "msra"}


def _conv_bn(n: NetSpec, name: str, bottom: Top, num_output: int, kernel: int, stride: int = 1,
             group: int = 1, relu: bool = True) -> Top:
    """Convolution (no bias) + BatchNorm + Scale(bias), the last two in place, then an in-place
    ReLU when ``relu``."""
    conv = L.Convolution(bottom, num_output=num_output, kernel_size=kernel, stride=stride,
                         pad=(kernel - 1) // 2, group=group, bias_term=False,
                         weight_filler=_MSRA)
    setattr(n, name, conv)
    setattr(n, "bn_" + name, L.BatchNorm(conv, in_place=True))
    setattr(n, "scale_" + name, L.Scale(conv, bias_term=True, in_place=True))
    if relu:
        setattr(n, name + "_relu", L.ReLU(conv, in_place=True))
    return conv


def _head(n: NetSpec, train: bool, channels: int, size: int, batch: int) -> Top:
    if train:
        n.data, n.label = L.DummyData(shape=[dict(dim=[batch, channels, size, size]),
                                             dict(dim=[batch])], ntop=2)
    else:
        n.data = L.Input(shape=dict(dim=[batch, channels, size, size]))
    return n.data


def _tail(n: NetSpec, train: bool, bottom: Top, classes: int) -> caffe_pb2.NetParameter:
    n.fc = L.InnerProduct(bottom, num_output=classes, weight_filler=_MSRA)
    if train:
        n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    else:
        n.prob = L.Softmax(n.fc)
    return n.to_proto()


def resnet50(train: bool, batch: int = 8, size: int = 224) -> caffe_pb2.NetParameter:
    """ResNet-50 v1 as in He et al.'s Caffe release (stride on the first 1x1 of a stage)."""
    n = NetSpec()
    x = _head(n, train, 3, size, batch)
    x = _conv_bn(n, "conv1", x, 64, 7, stride=2)
    n.pool1 = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    x = n.pool1
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        for block in range(blocks):
            name = f"res{stage}{chr(ord('a') + block)}"
            stride = 2 if block == 0 and stage > 2 else 1
            shortcut = (_conv_bn(n, f"{name}_branch1", x, 4 * width, 1, stride, relu=False)
                        if block == 0 else x)
            y = x
            for part, (out, kernel, s) in zip("abc", ((width, 1, stride), (width, 3, 1),
                                                      (4 * width, 1, 1)), strict=True):
                y = _conv_bn(n, f"{name}_branch2{part}", y, out, kernel, s, relu=part != "c")
            setattr(n, name, L.Eltwise(shortcut, y))
            x = getattr(n, name)
            setattr(n, name + "_relu", L.ReLU(x, in_place=True))
    n.pool5 = L.Pooling(x, pool=P.Pooling.AVE, global_pooling=True)
    return _tail(n, train, n.pool5, 1000)


def mobilenet_v2(train: bool, batch: int = 8, size: int = 224) -> caffe_pb2.NetParameter:
    """MobileNet v2 (width 1.0): stem, 17 inverted residual blocks, 1x1 to 1280, global
    average pooling, a 1000-way classifier."""
    n = NetSpec()
    x = _conv_bn(n, "conv1", _head(n, train, 3, size, batch), 32, 3, stride=2)
    channels, index = 32, 0
    for expand, out, repeats, first_stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                                               (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                                               (6, 320, 1, 1)):
        for r in range(repeats):
            index += 1
            name, stride = f"block{index}", first_stride if r == 0 else 1
            y = x
            hidden = channels * expand
            if expand != 1:
                y = _conv_bn(n, f"{name}_expand", y, hidden, 1)
            y = _conv_bn(n, f"{name}_dw", y, hidden, 3, stride=stride, group=hidden)
            y = _conv_bn(n, f"{name}_project", y, out, 1, relu=False)
            if stride == 1 and channels == out:
                setattr(n, f"{name}_sum", L.Eltwise(x, y))
                y = getattr(n, f"{name}_sum")
            x, channels = y, out
    x = _conv_bn(n, "conv_last", x, 1280, 1)
    n.pool = L.Pooling(x, pool=P.Pooling.AVE, global_pooling=True)
    return _tail(n, train, n.pool, 1000)


def cifar10_quick(train: bool, batch: int = 100, size: int = 32) -> caffe_pb2.NetParameter:
    """The layers of examples/cifar10/cifar10_quick_train_test.prototxt."""
    n = NetSpec()
    x = _head(n, train, 3, size, batch)
    gauss = {"type": "gaussian", "std": 0.01}
    n.conv1 = L.Convolution(x, num_output=32, kernel_size=5, pad=2, weight_filler=gauss)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.relu1 = L.ReLU(n.pool1, in_place=True)
    n.conv2 = L.Convolution(n.pool1, num_output=32, kernel_size=5, pad=2, weight_filler=gauss)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.conv3 = L.Convolution(n.pool2, num_output=64, kernel_size=5, pad=2, weight_filler=gauss)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.pool3 = L.Pooling(n.conv3, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.ip1 = L.InnerProduct(n.pool3, num_output=64, weight_filler=gauss)
    n.fc = L.InnerProduct(n.ip1, num_output=10, weight_filler=gauss)
    if train:
        n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    else:
        n.prob = L.Softmax(n.fc)
    return n.to_proto()


def cifar10_full(train: bool, batch: int = 100, size: int = 32) -> caffe_pb2.NetParameter:
    """The layers of examples/cifar10/cifar10_full_train_test.prototxt: CIFAR-10 quick's
    convolutions and poolings with a WITHIN_CHANNEL LRN after the first two poolings, and one
    10-way classifier."""
    n = NetSpec()
    x = _head(n, train, 3, size, batch)

    def conv(bottom: Top, num_output: int, std: float) -> Top:
        return L.Convolution(bottom, num_output=num_output, kernel_size=5, pad=2,
                             weight_filler={"type": "gaussian", "std": std})

    def norm(bottom: Top) -> Top:
        return L.LRN(bottom, local_size=3, alpha=5e-5, beta=0.75,
                     norm_region=P.LRN.WITHIN_CHANNEL)

    n.conv1 = conv(x, 32, 0.0001)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.relu1 = L.ReLU(n.pool1, in_place=True)
    n.norm1 = norm(n.pool1)
    n.conv2 = conv(n.norm1, 32, 0.01)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.norm2 = norm(n.pool2)
    n.conv3 = conv(n.norm2, 64, 0.01)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.pool3 = L.Pooling(n.conv3, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.fc = L.InnerProduct(n.pool3, num_output=10,
                          weight_filler={"type": "gaussian", "std": 0.01})
    if train:
        n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    else:
        n.prob = L.Softmax(n.fc)
    return n.to_proto()


def _fire(n: NetSpec, name: str, bottom: Top, squeeze: int, expand: int) -> Top:
    """A fire module: a 1x1 squeeze, then 1x1 and 3x3 expands side by side, concatenated;
    each convolution followed by an in-place ReLU."""
    def conv_relu(part: str, x: Top, num_output: int, kernel: int) -> Top:
        conv = L.Convolution(x, num_output=num_output, kernel_size=kernel,
                             pad=(kernel - 1) // 2, weight_filler=_MSRA)
        setattr(n, f"{name}/{part}", conv)
        setattr(n, f"{name}/relu_{part}", L.ReLU(conv, in_place=True))
        return conv
    s = conv_relu("squeeze1x1", bottom, squeeze, 1)
    setattr(n, f"{name}/concat", L.Concat(conv_relu("expand1x1", s, expand, 1),
                                          conv_relu("expand3x3", s, expand, 3)))
    return getattr(n, f"{name}/concat")


def squeezenet1_1(train: bool, batch: int = 8, size: int = 227) -> caffe_pb2.NetParameter:
    """SqueezeNet 1.1: conv1 3x3/2, eight fire modules with max pooling after conv1, fire3
    and fire5, dropout, conv10 (the 1000-way classifier, named ``fc`` here as the benchmarks
    address the logits), ReLU, global average pooling."""
    n = NetSpec()
    n.conv1 = L.Convolution(_head(n, train, 3, size, batch), num_output=64, kernel_size=3,
                            stride=2, weight_filler=_MSRA)
    n.relu_conv1 = L.ReLU(n.conv1, in_place=True)
    x = n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    for index, (squeeze, expand) in enumerate(((16, 64), (16, 64), (32, 128), (32, 128),
                                               (48, 192), (48, 192), (64, 256), (64, 256)),
                                              start=2):
        x = _fire(n, f"fire{index}", x, squeeze, expand)
        if index in (3, 5):
            setattr(n, f"pool{index}", L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3,
                                                 stride=2))
            x = getattr(n, f"pool{index}")
    n.drop9 = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    n.fc = L.Convolution(x, num_output=1000, kernel_size=1,
                         weight_filler={"type": "gaussian", "std": 0.01})
    n.relu_conv10 = L.ReLU(n.fc, in_place=True)
    n.pool10 = L.Pooling(n.fc, pool=P.Pooling.AVE, global_pooling=True)
    if train:
        n.loss = L.SoftmaxWithLoss(n.pool10, n.label)
    else:
        n.prob = L.Softmax(n.pool10)
    return n.to_proto()


_XAVIER = {"type": "xavier"}


def _inception(n: NetSpec, name: str, bottom: Top, one: int, reduce3: int, three: int,
               reduce5: int, five: int, proj: int) -> Top:
    """An inception module: a 1x1, a 1x1 reduction then a 3x3, a 1x1 reduction then a 5x5,
    and a 3x3/1 max pooling then a 1x1 projection, side by side, concatenated in that order;
    each convolution followed by an in-place ReLU."""
    def conv_relu(part: str, x: Top, num_output: int, kernel: int) -> Top:
        conv = L.Convolution(x, num_output=num_output, kernel_size=kernel,
                             pad=(kernel - 1) // 2, weight_filler=_XAVIER,
                             bias_filler={"type": "constant", "value": 0.2})
        setattr(n, f"{name}/{part}", conv)
        setattr(n, f"{name}/relu_{part}", L.ReLU(conv, in_place=True))
        return conv
    branches = [conv_relu("1x1", bottom, one, 1),
                conv_relu("3x3", conv_relu("3x3_reduce", bottom, reduce3, 1), three, 3),
                conv_relu("5x5", conv_relu("5x5_reduce", bottom, reduce5, 1), five, 5)]
    setattr(n, f"{name}/pool", L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=1,
                                         pad=1))
    branches.append(conv_relu("pool_proj", getattr(n, f"{name}/pool"), proj, 1))
    setattr(n, f"{name}/output", L.Concat(*branches))
    return getattr(n, f"{name}/output")


def _auxiliary_head(n: NetSpec, name: str, bottom: Top) -> None:
    """A training-only classifier on an inception 4 output: 5x5/3 average pooling, a 1x1
    convolution to 128, a 1024-wide fully connected layer, dropout 0.7 and a 1000-way
    classifier whose loss counts 0.3."""
    constant = {"type": "constant", "value": 0.2}
    setattr(n, f"{name}/ave_pool", L.Pooling(bottom, pool=P.Pooling.AVE, kernel_size=5,
                                             stride=3))
    setattr(n, f"{name}/conv", L.Convolution(getattr(n, f"{name}/ave_pool"), num_output=128,
                                             kernel_size=1, weight_filler=_XAVIER,
                                             bias_filler=constant))
    setattr(n, f"{name}/relu_conv", L.ReLU(getattr(n, f"{name}/conv"), in_place=True))
    setattr(n, f"{name}/fc", L.InnerProduct(getattr(n, f"{name}/conv"), num_output=1024,
                                            weight_filler=_XAVIER, bias_filler=constant))
    setattr(n, f"{name}/relu_fc", L.ReLU(getattr(n, f"{name}/fc"), in_place=True))
    setattr(n, f"{name}/drop_fc", L.Dropout(getattr(n, f"{name}/fc"), dropout_ratio=0.7,
                                            in_place=True))
    setattr(n, f"{name}/classifier", L.InnerProduct(getattr(n, f"{name}/fc"), num_output=1000,
                                                    weight_filler=_XAVIER))
    setattr(n, f"{name}/loss", L.SoftmaxWithLoss(getattr(n, f"{name}/classifier"), n.label,
                                                 loss_weight=0.3))


def googlenet(train: bool, batch: int = 8, size: int = 224) -> caffe_pb2.NetParameter:
    """GoogLeNet as BVLC's bvlc_googlenet: conv1 7x7/2, max pooling, LRN, conv2 (1x1 then
    3x3), LRN, max pooling, inception 3a-3b, max pooling, 4a-4e, max pooling, 5a-5b, 7x7
    average pooling, dropout 0.4 and the 1000-way classifier (loss3/classifier, named ``fc``
    here as the benchmarks address the logits). The train net adds BVLC's two auxiliary
    heads on inception 4a and 4d (loss weight 0.3 each); the deploy net, as BVLC's, has none.
    Below 224x224 the last pooling shrinks to the map it gets (global, as 7x7 is at 224)."""
    n = NetSpec()
    x = _head(n, train, 3, size, batch)
    constant = {"type": "constant", "value": 0.2}

    def conv_relu(name: str, relu: str, x: Top, num_output: int, kernel: int,
                  stride: int = 1) -> Top:
        conv = L.Convolution(x, num_output=num_output, kernel_size=kernel, stride=stride,
                             pad=(kernel - 1) // 2, weight_filler=_XAVIER,
                             bias_filler=constant)
        setattr(n, name, conv)
        setattr(n, relu, L.ReLU(conv, in_place=True))
        return conv

    def max_pool(name: str, x: Top) -> Top:
        setattr(n, name, L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2))
        return getattr(n, name)

    def lrn(name: str, x: Top) -> Top:
        setattr(n, name, L.LRN(x, local_size=5, alpha=1e-4, beta=0.75))
        return getattr(n, name)

    x = conv_relu("conv1/7x7_s2", "conv1/relu_7x7", x, 64, 7, stride=2)
    x = lrn("pool1/norm1", max_pool("pool1/3x3_s2", x))
    x = conv_relu("conv2/3x3_reduce", "conv2/relu_3x3_reduce", x, 64, 1)
    x = conv_relu("conv2/3x3", "conv2/relu_3x3", x, 192, 3)
    x = max_pool("pool2/3x3_s2", lrn("conv2/norm2", x))
    x = _inception(n, "inception_3a", x, 64, 96, 128, 16, 32, 32)
    x = _inception(n, "inception_3b", x, 128, 128, 192, 32, 96, 64)
    x = max_pool("pool3/3x3_s2", x)
    for module, widths in zip("abcde", ((192, 96, 208, 16, 48, 64),
                                        (160, 112, 224, 24, 64, 64),
                                        (128, 128, 256, 24, 64, 64),
                                        (112, 144, 288, 32, 64, 64),
                                        (256, 160, 320, 32, 128, 128)), strict=True):
        x = _inception(n, f"inception_4{module}", x, *widths)
        if train and module in "ad":
            _auxiliary_head(n, "loss1" if module == "a" else "loss2", x)
    x = max_pool("pool4/3x3_s2", x)
    x = _inception(n, "inception_5a", x, 256, 160, 320, 32, 128, 128)
    x = _inception(n, "inception_5b", x, 384, 192, 384, 48, 128, 128)
    side = (size - 1) // 2 + 1  # conv1 (7x7/2, pad 3), then four 3x3/2 poolings rounding up
    for _ in range(4):
        side = -(-(side - 3) // 2) + 1
    n["pool5/7x7_s1"] = L.Pooling(x, pool=P.Pooling.AVE, kernel_size=min(7, side), stride=1)
    n["pool5/drop_7x7_s1"] = L.Dropout(n["pool5/7x7_s1"], dropout_ratio=0.4, in_place=True)
    n.fc = L.InnerProduct(n["pool5/7x7_s1"], num_output=1000, weight_filler=_XAVIER)
    if train:
        n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    else:
        n.prob = L.Softmax(n.fc)
    return n.to_proto()


def caffenet(train: bool, batch: int = 8, size: int = 227) -> caffe_pb2.NetParameter:
    """BVLC's CaffeNet deploy net (``benchmarks/nets``) at this batch and size, its fc8
    renamed ``fc`` as the benchmarks address the logits; for training its Input becomes a
    DummyData batch with labels and its Softmax a SoftmaxWithLoss."""
    with open(REPO / "benchmarks" / "nets" / "caffenet_deploy.prototxt") as f:
        param = text_format.Parse(f.read(), caffe_pb2.NetParameter())
    for layer in param.layer:
        for names in (layer.bottom, layer.top):
            names[:] = ["fc" if name == "fc8" else name for name in names]
        if layer.name == "fc8":
            layer.name = "fc"
        if layer.type == "Input":
            layer.input_param.shape[0].dim[:] = [batch, 3, size, size]
            if train:
                layer.type = "DummyData"
                layer.top.append("label")
                layer.ClearField("input_param")
                layer.dummy_data_param.shape.add(dim=[batch, 3, size, size])
                layer.dummy_data_param.shape.add(dim=[batch])
        if layer.type == "Softmax" and train:
            layer.type, layer.name = "SoftmaxWithLoss", "loss"
            layer.bottom.append("label")
            layer.top[:] = ["loss"]
    return param


NETS: dict[str, Callable[..., Any]] = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2,
                                       "squeezenet1_1": squeezenet1_1, "googlenet": googlenet,
                                       "caffenet": caffenet,
                                       "cifar10_quick": cifar10_quick,
                                       "cifar10_full": cifar10_full}
