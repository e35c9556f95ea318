"""Caffe layer types as ONNX operators, one converter per layer family.

Each converter reads the layer as brewnet set it up (resolved kernel sizes, canonical axes, the
parameter blobs) and emits nodes whose output equals brewnet's forward in the TEST phase.
Where Caffe's arithmetic differs from the ONNX operator's default (pooled sizes, the AVE
divisor, BatchNorm's stored sums, Scale's broadcasting from an axis), the converter says how it
makes them agree.
"""

from __future__ import annotations

import numpy as np

from ..proto import caffe_pb2
from .onnx_graph import LayerView, OnnxGraph, converts

_ELTWISE = caffe_pb2.EltwiseParameter
_LRN = caffe_pb2.LRNParameter


def _canonical(view: LayerView, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise view.error(f"axis {axis} is out of range for a {ndim}-d bottom")
    return axis % ndim


# -- entry points and pure plumbing -----------------------------------------------------------
@converts("Input")
def _input(g: OnnxGraph, v: LayerView) -> None:
    """Each top is a graph input of the shape brewnet gave it (the batch size included)."""
    for name, shape in zip(v.outputs, v.out_shapes, strict=True):
        g.input(name, shape)


@converts("Split", "Dropout")
def _identity(g: OnnxGraph, v: LayerView) -> None:
    """Split copies its bottom to every top; Caffe's Dropout is the identity at test time (it
    scales by 1/(1-p) while training instead)."""
    for out in v.outputs:
        g.node("Identity", [v.inputs[0]], [out], v.name)


@converts("Flatten", "Reshape")
def _reshape(g: OnnxGraph, v: LayerView) -> None:
    """Both only relabel axes; the top's static shape is the target."""
    shape = g.shape(f"{v.name}/shape", v.out_shapes[0])
    g.node("Reshape", [v.inputs[0], shape], v.outputs, v.name)


# -- element-wise neurons -----------------------------------------------------------------------
@converts("ReLU")
def _relu(g: OnnxGraph, v: LayerView) -> None:
    """negative_slope != 0 is Caffe's leaky ReLU."""
    slope = float(v.layer.param.relu_param.negative_slope)
    if slope:
        g.node("LeakyRelu", v.inputs, v.outputs, v.name, alpha=slope)
    else:
        g.node("Relu", v.inputs, v.outputs, v.name)


@converts("Sigmoid", "TanH")
def _activation(g: OnnxGraph, v: LayerView) -> None:
    g.node({"Sigmoid": "Sigmoid", "TanH": "Tanh"}[v.layer.type], v.inputs, v.outputs, v.name)


@converts("PReLU")
def _prelu(g: OnnxGraph, v: LayerView) -> None:
    """One slope per channel (axis 1), or one for all with channel_shared."""
    slope = v.blob(0)
    ndim = len(v.in_shapes[0])
    if slope.ndim:  # (C,) broadcast over the axes after the channels
        slope = slope.reshape((-1,) + (1,) * (ndim - 2))
    g.node("PRelu", [v.inputs[0], g.initializer(f"{v.name}/slope", slope)], v.outputs, v.name)


# -- convolution, pooling, normalization ----------------------------------------------------------
@converts("Convolution", "Deconvolution")
def _convolution(g: OnnxGraph, v: LayerView) -> None:
    """ONNX Conv is Caffe's cross-correlation with the same (M, C/group, kh, kw) weights, and
    ConvTranspose is Caffe's Deconvolution with its (C, M/group, kh, kw) weights and the same
    output size (no output_padding). Each bottom (Caffe allows several, sharing the weights)
    gets its own node."""
    layer = v.layer
    if layer._axis != 1:
        raise v.error(f"axis {layer._axis} (leading axes folded into the batch) has no ONNX "
                      "convolution equivalent; use axis 1")
    nsp = layer._num_spatial
    pad = list(layer._pad[2 - nsp:])
    attrs = dict(kernel_shape=list(layer._kernel[2 - nsp:]), strides=list(layer._stride[2 - nsp:]),
                 pads=pad + pad, dilations=list(layer._dilation[2 - nsp:]), group=layer._group)
    weights = [g.initializer(f"{v.name}/weight", v.blob(0))]
    if layer._bias_term:
        weights.append(g.initializer(f"{v.name}/bias", v.blob(1)))
    op = "Conv" if layer.type == "Convolution" else "ConvTranspose"
    for x, y in zip(v.inputs, v.outputs, strict=True):
        g.node(op, [x, *weights], [y], v.name, **attrs)


@converts("Crop")
def _crop(g: OnnxGraph, v: LayerView) -> None:
    """The axes from ``axis`` on are cut to the second bottom's extent at Caffe's offsets; the
    second bottom only gives the shape, so it is not an input of the Slice."""
    layer = v.layer
    axes = list(range(layer._axis, len(v.in_shapes[0])))
    starts = list(layer._offsets)
    ends = [o + v.out_shapes[0][a] for o, a in zip(starts, axes, strict=True)]
    inputs = [v.inputs[0], g.shape(f"{v.name}/starts", starts), g.shape(f"{v.name}/ends", ends),
              g.shape(f"{v.name}/axes", axes)]
    g.node("Slice", inputs, v.outputs, v.name)


def _end_pads(v: LayerView, size: tuple[int, ...], kernel: list[int], stride: list[int],
              padded: list[int], out: tuple[int, ...]) -> list[int]:
    """Extra padding after each axis so that ONNX's floor-mode size equals Caffe's ``out``.

    Caffe rounds up and then drops a last window that would start in the right padding;
    ONNX's ceil_mode has no such rule. Instead the end is padded just enough for ``out``
    windows, with ceil_mode 0: windows at ``0, s, ..., (out-1)*s`` over the padded extent.
    """
    ends = []
    for n, k, s, length, o in zip(size, kernel, stride, padded, out, strict=True):
        extra = max(0, (o - 1) * s + k - length)
        if (length + extra - k) // s + 1 != o or extra >= k:
            raise v.error(f"Caffe's pooled size {o} from input {n} (kernel {k}, stride {s}) "
                          "has a window wholly outside the image, which ONNX cannot express")
        ends.append(extra)
    return ends


@converts("Pooling")
def _pooling(g: OnnxGraph, v: LayerView) -> None:
    """MAX: ONNX MaxPool ignores padded cells, as Caffe clips its windows to the image. AVE:
    Caffe divides by the window clipped to the padded image ``[-pad, in + pad)``, so the
    symmetric pad becomes an explicit zero Pad and AveragePool runs with count_include_pad 0:
    the zeros count in the divisor, the extra end padding (ceil rounding) does not."""
    layer = v.layer
    if layer._stochastic:
        raise v.error("STOCHASTIC pooling draws at random (and averages x^2/x at test time); "
                      "ONNX has no such operator")
    if len(v.outputs) > 1:
        raise v.error("the MAX mask top (argmax indices) has no ONNX equivalent; remove it")
    x = v.inputs[0]
    if layer._global:
        g.node("GlobalMaxPool" if layer._max else "GlobalAveragePool", [x], v.outputs, v.name)
        return
    kernel, stride, pad = list(layer._kernel), list(layer._stride), list(layer._pad)
    size, out = v.in_shapes[0][2:], v.out_shapes[0][2:]
    padded = [n + 2 * p for n, p in zip(size, pad, strict=True)]
    ends = _end_pads(v, size, kernel, stride, padded, out)
    attrs = dict(kernel_shape=kernel, strides=stride, ceil_mode=0)
    if layer._max:
        ends = [p + e for p, e in zip(pad, ends, strict=True)]
        g.node("MaxPool", [x], v.outputs, v.name, pads=pad + ends, **attrs)
        return
    if any(pad):
        pads = g.shape(f"{v.name}/pads", [0, 0, *pad, 0, 0, *pad])
        padded_x = g.unique(f"{v.name}/padded")
        g.node("Pad", [x, pads], [padded_x], f"{v.name}/pad", mode="constant")
        x = padded_x
    g.node("AveragePool", [x], v.outputs, v.name, pads=[0, 0, *ends], count_include_pad=0,
           **attrs)


@converts("LRN")
def _lrn(g: OnnxGraph, v: LayerView) -> None:
    """ACROSS_CHANNELS is ONNX LRN exactly (alpha divided by size, bias = k). WITHIN_CHANNEL is
    Caffe's own composition: x * (1 + alpha * avg_{n x n}(x^2))^-beta, k unused, the average
    always over n*n cells (stride 1, pad (n-1)/2)."""
    p = v.layer.param.lrn_param
    size, alpha, beta = int(p.local_size), float(p.alpha), float(p.beta)
    x = v.inputs[0]
    if p.norm_region == _LRN.ACROSS_CHANNELS:
        g.node("LRN", [x], v.outputs, v.name, size=size, alpha=alpha, beta=beta, bias=float(p.k))
        return
    r = (size - 1) // 2
    names = [g.unique(f"{v.name}/{what}") for what in ("square", "mean", "scaled", "shifted",
                                                       "factor")]
    square, mean, scaled, shifted, factor = names
    g.node("Mul", [x, x], [square], f"{v.name}/square")
    g.node("AveragePool", [square], [mean], f"{v.name}/mean", kernel_shape=[size, size],
           strides=[1, 1], pads=[r, r, r, r], count_include_pad=1)
    g.node("Mul", [mean, g.scalar(f"{v.name}/alpha", alpha)], [scaled], f"{v.name}/alpha")
    g.node("Add", [scaled, g.scalar(f"{v.name}/one", 1.0)], [shifted], f"{v.name}/shift")
    g.node("Pow", [shifted, g.scalar(f"{v.name}/power", -beta)], [factor], f"{v.name}/power")
    g.node("Mul", [x, factor], v.outputs, v.name)


@converts("BatchNorm")
def _batch_norm(g: OnnxGraph, v: LayerView) -> None:
    """Caffe stores running *sums* and their weight s: mean = blob0 / s, var = blob1 / s
    (0 when s is 0). Exported with scale 1 and shift 0; the Scale layer after it adds those."""
    layer = v.layer
    if not layer.use_global_stats:
        raise v.error("use_global_stats is false, so it normalizes by each batch's statistics; "
                      "export the TEST-phase net (or set use_global_stats: true)")
    if len(v.in_shapes[0]) < 2:
        raise v.error(f"bottom shape {v.in_shapes[0]} has no channel axis")
    s = float(v.blob(2).reshape(-1)[0])
    factor = np.float32(0.0 if s == 0 else 1.0 / s)
    mean, var = v.blob(0) * factor, v.blob(1) * factor
    channels = mean.shape[0]
    inputs = [v.inputs[0], g.initializer(f"{v.name}/scale", np.ones(channels, np.float32)),
              g.initializer(f"{v.name}/shift", np.zeros(channels, np.float32)),
              g.initializer(f"{v.name}/mean", mean), g.initializer(f"{v.name}/var", var)]
    g.node("BatchNormalization", inputs, v.outputs, v.name, epsilon=float(layer.eps))


# -- affine maps ---------------------------------------------------------------------------------
def _broadcastable(shape: tuple[int, ...], axis: int, ndim: int) -> tuple[int, ...]:
    """Caffe aligns an operand with the bottom's axes from ``axis`` on; ONNX (NumPy)
    broadcasting aligns trailing axes, so pad the operand's shape with 1s at the end."""
    return tuple(shape) + (1,) * (ndim - axis - len(shape))


@converts("Scale", "Bias")
def _scale_bias(g: OnnxGraph, v: LayerView) -> None:
    """Scale: x * s (+ b); Bias: x + b. The operand is a learned blob or the second bottom."""
    layer = v.layer
    ndim, axis = len(v.in_shapes[0]), layer.axis
    scaling = layer.type == "Scale"
    if len(v.inputs) > 1:
        operand = g.unique(f"{v.name}/operand")
        target = g.shape(f"{v.name}/operand_shape", _broadcastable(v.in_shapes[1], axis, ndim))
        g.node("Reshape", [v.inputs[1], target], [operand], f"{v.name}/operand")
    else:
        value = v.blob(0)
        operand = g.initializer(f"{v.name}/{'scale' if scaling else 'bias'}",
                                value.reshape(_broadcastable(value.shape, axis, ndim)))
    bias = None
    if scaling and layer.bias_term:
        b = v.blob(len(layer.blobs) - 1)
        bias = g.initializer(f"{v.name}/bias", b.reshape(_broadcastable(b.shape, axis, ndim)))
    if not scaling:
        g.node("Add", [v.inputs[0], operand], v.outputs, v.name)
    elif bias is None:
        g.node("Mul", [v.inputs[0], operand], v.outputs, v.name)
    else:
        product = g.unique(f"{v.name}/product")
        g.node("Mul", [v.inputs[0], operand], [product], f"{v.name}/mul")
        g.node("Add", [product, bias], v.outputs, v.name)


@converts("InnerProduct")
def _inner_product(g: OnnxGraph, v: LayerView) -> None:
    """Flatten the axes from ``axis`` on into K, Gemm with W (N, K) transposed (W (K, N) as is
    with ``transpose: true``), then restore the leading axes when axis > 1."""
    layer = v.layer
    x = v.inputs[0]
    in_shape = v.in_shapes[0]
    if len(in_shape) != 2 or layer.axis != 1:
        flat = g.unique(f"{v.name}/flat")
        g.node("Flatten", [x], [flat], f"{v.name}/flatten", axis=layer.axis)
        x = flat
    inputs = [x, g.initializer(f"{v.name}/weight", v.blob(0))]
    if layer.bias_term:
        inputs.append(g.initializer(f"{v.name}/bias", v.blob(1)))
    trans_b = 0 if layer.transpose else 1
    if layer.axis == 1:
        g.node("Gemm", inputs, v.outputs, v.name, transB=trans_b)
        return
    product = g.unique(f"{v.name}/gemm")
    g.node("Gemm", inputs, [product], f"{v.name}/gemm", transB=trans_b)
    g.node("Reshape", [product, g.shape(f"{v.name}/shape", v.out_shapes[0])], v.outputs, v.name)


# -- reductions and joins ------------------------------------------------------------------------
@converts("Softmax")
def _softmax(g: OnnxGraph, v: LayerView) -> None:
    """ONNX Softmax (opset 13 on) normalizes along one axis, as Caffe's."""
    axis = _canonical(v, int(v.layer.param.softmax_param.axis), len(v.in_shapes[0]))
    g.node("Softmax", v.inputs, v.outputs, v.name, axis=axis)


@converts("Concat")
def _concat(g: OnnxGraph, v: LayerView) -> None:
    g.node("Concat", v.inputs, v.outputs, v.name, axis=v.layer.axis)


@converts("Eltwise")
def _eltwise(g: OnnxGraph, v: LayerView) -> None:
    """PROD → Mul chain; MAX → Max; SUM → Sum of each bottom times its coeff (Mul skipped for
    a coefficient of 1)."""
    layer = v.layer
    if layer.op == _ELTWISE.MAX:
        g.node("Max", v.inputs, v.outputs, v.name)
        return
    if layer.op == _ELTWISE.PROD:
        acc = v.inputs[0]
        for i, x in enumerate(v.inputs[1:], start=1):
            last = i == len(v.inputs) - 1
            out = v.outputs[0] if last else g.unique(f"{v.name}/prod{i}")
            g.node("Mul", [acc, x], [out], v.name)
            acc = out
        return
    terms = []
    for i, (x, c) in enumerate(zip(v.inputs, layer.coeff, strict=True)):
        if c == 1.0:
            terms.append(x)
            continue
        term = g.unique(f"{v.name}/term{i}")
        g.node("Mul", [x, g.scalar(f"{v.name}/coeff{i}", c)], [term], f"{v.name}/coeff{i}")
        terms.append(term)
    g.node("Sum", terms, v.outputs, v.name)
