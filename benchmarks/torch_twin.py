"""The peer: a PyTorch module computing the same chain as a brewnet net, holding a copy of its
weights, so both frameworks start from identical values (Caffe's xavier, drawn by brewnet's
filler) and their outputs can be compared before they are timed.

``torch_twin`` translates chain nets (each layer reads the previous layer's top) of the layer
types LeNet and CaffeNet use; data, input and loss layers are left to the caller.
``TorchGraph`` runs any net of those types plus BatchNorm, Scale, Eltwise SUM and Split (the
DAGs of ResNet and MobileNet) by walking the compiled plan's steps over a dict of tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brewnet.net import Net
from brewnet.proto import caffe_pb2

# Layers with no arithmetic the peer must reproduce.
SKIPPED = {"Data", "MemoryData", "DummyData", "Input", "SoftmaxWithLoss", "Accuracy", "Split"}


def _pair(p: Any, name: str, default: int) -> tuple[int, int]:
    """Caffe's ConvolutionParameter spatial fields: ``name_h``/``name_w`` when set, else the
    repeated ``name`` (one value for both axes, or h then w), else ``default``."""
    if f"{name}_h" in p.DESCRIPTOR.fields_by_name and p.HasField(f"{name}_h"):
        return getattr(p, f"{name}_h"), getattr(p, f"{name}_w")
    values = list(getattr(p, name))
    return (values[0], values[-1]) if values else (default, default)


def _within_channel_lrn(torch: Any, size: int, alpha: float, beta: float) -> Any:
    """Caffe's WITHIN_CHANNEL LRN, which torch lacks: x / (1 + alpha * m)^beta, m the mean of
    x^2 over a size x size window with zeros beyond the borders (Caffe's AVE pooling of the
    squares, padding counted, then a Power layer with shift 1; ``k`` is not used)."""
    functional = torch.nn.functional

    class WithinChannelLRN(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            mean = functional.avg_pool2d(x * x, size, stride=1, padding=(size - 1) // 2,
                                         count_include_pad=True)
            return x * (1 + alpha * mean).pow(-beta)

    return WithinChannelLRN()


def _module(torch: Any, layer: Any) -> Any:
    nn = torch.nn
    lp = layer.param
    if lp.type == "Convolution":
        p = lp.convolution_param
        w = layer.blobs[0].data
        conv = nn.Conv2d(w.shape[1] * p.group, w.shape[0], tuple(w.shape[2:]),
                         stride=_pair(p, "stride", 1), padding=_pair(p, "pad", 0),
                         dilation=_pair(p, "dilation", 1), groups=p.group,
                         bias=len(layer.blobs) > 1)
        return conv, [conv.weight] + ([conv.bias] if conv.bias is not None else [])
    if lp.type == "InnerProduct":
        w = layer.blobs[0].data
        fc = nn.Linear(w.shape[1], w.shape[0], bias=len(layer.blobs) > 1)
        return nn.Sequential(nn.Flatten(), fc), [fc.weight] + (
            [fc.bias] if fc.bias is not None else [])
    if lp.type == "Pooling":
        p = lp.pooling_param
        if p.global_pooling:
            return (nn.AdaptiveMaxPool2d(1) if p.pool == caffe_pb2.PoolingParameter.MAX
                    else nn.AdaptiveAvgPool2d(1)), []
        k = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size,) * 2
        s = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
        pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
        cls = nn.MaxPool2d if p.pool == caffe_pb2.PoolingParameter.MAX else nn.AvgPool2d
        return cls(k, s, pad, ceil_mode=True), []  # Caffe rounds pooled sizes up
    if lp.type == "ReLU":
        return nn.ReLU(inplace=True), []
    if lp.type == "LRN":
        p = lp.lrn_param
        if p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL:
            return _within_channel_lrn(torch, p.local_size, p.alpha, p.beta), []
        # ACROSS_CHANNELS: both divide alpha by local_size
        return nn.LocalResponseNorm(p.local_size, p.alpha, p.beta, p.k), []
    if lp.type == "Dropout":
        return nn.Dropout(lp.dropout_param.dropout_ratio), []
    if lp.type == "Softmax":
        return nn.Softmax(dim=1), []
    raise ValueError(f"layer '{lp.name}' ({lp.type}) has no PyTorch twin in benchmarks")


def torch_twin(torch: Any, net: Net) -> Any:
    """A ``torch.nn.Sequential`` of ``net``'s arithmetic layers, with ``net``'s current
    weights copied in. Its parameters come in ``net.learnable_params`` order."""
    modules, params = [], []
    for layer in net.layers:
        if layer.type in SKIPPED:
            continue
        module, mine = _module(torch, layer)
        with torch.no_grad():
            for tensor, blob in zip(mine, layer.blobs, strict=True):
                tensor.copy_(torch.from_numpy(blob.data.reshape(tuple(tensor.shape))))
        modules.append(module)
        params.extend(mine)
    model = torch.nn.Sequential(*modules)
    if len(params) != len(net.learnable_params):
        raise ValueError(f"the twin has {len(params)} parameters, net '{net.name}' "
                         f"{len(net.learnable_params)}: weight sharing is not translated")
    return model


class TorchGraph:
    """``net``'s arithmetic in PyTorch, step by step over the compiled plan, with a copy of its
    weights: BatchNorm normalizes by the batch (TRAIN) or by the stored sums (global stats),
    as brewnet's layer does. Call it with the input tensor (and, for a train net, the labels);
    it returns the last top that is not a loss and keeps every top of that call in
    ``values``, by blob name. With labels, ``loss`` is Caffe's net loss: each SoftmaxWithLoss
    (on its bottom flattened to (N, classes), the batch mean) times its loss weight, summed."""

    def __init__(self, torch: Any, net: Net) -> None:
        self.torch = torch
        self.net = net
        self.modules: dict[int, Any] = {}
        self.params: list[Any] = []
        self.constants: dict[int, tuple[Any, Any]] = {}
        self.values: dict[str, Any] = {}
        for i, step in enumerate(net.plan.steps):
            layer = step.layer
            if layer.type in SKIPPED | {"BatchNorm", "Scale", "Eltwise", "Softmax", "Concat"}:
                continue
            module, mine = _module(torch, layer)
            module.train(net.phase == caffe_pb2.TRAIN)  # Dropout is the identity at TEST
            with torch.no_grad():
                for tensor, blob in zip(mine, layer.blobs, strict=True):
                    tensor.copy_(torch.from_numpy(blob.data.reshape(tuple(tensor.shape))))
            self.modules[i] = module
            self.params.extend(mine)
        for i, step in enumerate(net.plan.steps):
            layer = step.layer
            if layer.type == "Scale":
                gamma = torch.nn.Parameter(torch.from_numpy(layer.blobs[0].data.copy()))
                beta = torch.nn.Parameter(torch.from_numpy(layer.blobs[1].data.copy()))
                self.modules[i] = (gamma.view(1, -1, 1, 1), beta.view(1, -1, 1, 1))
                self.params.extend([gamma, beta])
            elif layer.type == "BatchNorm" and layer.use_global_stats:
                mean_sum, var_sum, s = (b.data for b in layer.blobs)
                factor = np.float32(0 if s[0] == 0 else 1 / s[0])
                self.constants[i] = (torch.from_numpy(mean_sum * factor),
                                     torch.from_numpy(var_sum * factor))

    def __call__(self, x: Any, label: Any = None) -> Any:
        F = self.torch.nn.functional
        steps = self.net.plan.steps
        values = self.values = {steps[0].top_names[0]: x}
        if label is not None:
            values[steps[0].top_names[1]] = label
        self.loss: Any = None
        last = x
        for i, step in enumerate(steps):
            layer = step.layer
            if layer.type == "SoftmaxWithLoss" and label is not None:
                logits, target = (values[name] for name in step.bottom_names)
                term = F.cross_entropy(logits.flatten(1), target.long()) * step.loss_weights[0]
                self.loss = term if self.loss is None else self.loss + term
                continue
            if layer.type in SKIPPED - {"Split"}:
                continue
            inputs = [values[name] for name in step.bottom_names]
            if layer.type == "Split":
                outputs = inputs * len(step.top_names)
            elif layer.type == "BatchNorm":
                mean, var = self.constants.get(i, (None, None))
                outputs = [F.batch_norm(inputs[0], mean, var, training=i not in self.constants,
                                        eps=float(layer.eps))]
            elif layer.type == "Scale":
                gamma, beta = self.modules[i]
                outputs = [inputs[0] * gamma + beta]
            elif layer.type == "Eltwise":
                outputs = [inputs[0] + inputs[1]]
            elif layer.type == "Concat":
                outputs = [self.torch.cat(inputs, dim=1)]
            elif layer.type == "Softmax":
                outputs = [F.softmax(inputs[0], dim=1)]
            else:
                outputs = [self.modules[i](inputs[0])]
            values.update(zip(step.top_names, outputs, strict=True))
            last = outputs[0]
        return last
