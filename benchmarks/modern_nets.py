"""The modern nets the speed benchmarks run, written with NetSpec: ResNet-50 (He et al.'s Caffe
layout: BatchNorm + Scale after every convolution, a 1x1 stride-2 projection per stage),
MobileNet v2 (Sandler et al.: inverted residuals with depthwise 3x3 convolutions, ReLU for
ReLU6 as Caffe ports do) and CIFAR-10 quick (the Caffe example's layers).

Each builder returns a NetParameter: ``train=True`` reads a DummyData batch and its labels and
ends in SoftmaxWithLoss; ``train=False`` is the deploy net, an Input blob and a Softmax.
Weights are drawn by the fillers (msra for convolutions), so no model file is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brewnet.netspec import NetSpec, Top
from brewnet.netspec import layers as L
from brewnet.netspec import params as P
from brewnet.proto import caffe_pb2

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


NETS: dict[str, Callable[..., Any]] = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2,
                                       "cifar10_quick": cifar10_quick}
