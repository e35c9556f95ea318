"""A compiled brewnet Net written as an ONNX model: one graph node (or a few) per layer, the
layers' parameter blobs as initializers, and the shapes brewnet inferred as static shapes.

Caffe blobs may be rewritten in place (``top == bottom``); ONNX tensors are written once. So
each layer's tops get fresh tensor names, except that the last version of a blob (what
``net.forward()`` returns under that name) and the net's inputs keep the blob's own name: a
user feeds ``data`` and reads ``prob`` in onnxruntime exactly as in brewnet.

The converters for each layer family live in :mod:`.onnx_layers`; this module owns the
bookkeeping (names, initializers, nodes) and the model around them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import to_numpy
from ..errors import BrewnetError, NetError
from ..fileio import atomic_write
from ..net.state import filter_net, net_state
from ..proto import caffe_pb2

if TYPE_CHECKING:
    import onnx

    from ..layers.base import Layer
    from ..net import Net
    from ..net.plan import Plan

# Opset 17: every operator used here is stable there, and runtimes from 2022 on read it.
OPSET = 17
# Softmax along one axis (rather than over the flattened trailing axes) needs opset 13.
MIN_OPSET = 13


def _onnx() -> Any:
    """The ``onnx`` package, or an error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise BrewnetError("ONNX export needs the onnx package; install it with "
                           "`pip install brewnet[onnx]` (or `pip install onnx`)") from None
    return onnx


@dataclass
class LayerView:
    """One layer as its converter sees it: the layer, the ONNX tensor names of its bottoms and
    tops, and their (static) shapes."""

    layer: Layer
    inputs: list[str]
    outputs: list[str]
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]

    @property
    def name(self) -> str:
        return self.layer.name

    def error(self, message: str) -> NetError:
        return NetError(f"cannot export to ONNX: {message}", layer=self.layer.name,
                        layer_type=self.layer.type)

    def blob(self, j: int) -> np.ndarray:
        """Parameter blob ``j`` as a float32 host array."""
        return np.ascontiguousarray(to_numpy(self.layer.blobs[j].data), dtype=np.float32)


Converter = Callable[["OnnxGraph", LayerView], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*types: str) -> Callable[[Converter], Converter]:
    """Register a converter for the Caffe layer types it maps."""
    def register(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn
    return register


class OnnxGraph:
    """Nodes, initializers, inputs and outputs of the graph being built, with unique names."""

    def __init__(self, onnx_module: Any):
        self._onnx = onnx_module
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self._names: set[str] = set()

    def reserve(self, name: str) -> None:
        self._names.add(name)

    def unique(self, hint: str) -> str:
        """A tensor name not used yet: ``hint`` itself, or ``hint`` with a number."""
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def initializer(self, hint: str, array: np.ndarray) -> str:
        """Add a constant tensor (weights, shapes); returns its name."""
        name = self.unique(hint)
        self.initializers.append(self._onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, hint: str, value: float) -> str:
        return self.initializer(hint, np.array(value, dtype=np.float32))

    def shape(self, hint: str, dims: Sequence[int]) -> str:
        return self.initializer(hint, np.array(list(dims), dtype=np.int64))

    def node(self, op: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
             **attrs: Any) -> None:
        self.nodes.append(self._onnx.helper.make_node(op, list(inputs), list(outputs),
                                                      name=self.unique(name), **attrs))

    def input(self, name: str, shape: Sequence[int]) -> None:
        self.inputs.append(self._value_info(name, shape))

    def output(self, name: str, shape: Sequence[int]) -> None:
        self.outputs.append(self._value_info(name, shape))

    def _value_info(self, name: str, shape: Sequence[int]) -> Any:
        return self._onnx.helper.make_tensor_value_info(
            name, self._onnx.TensorProto.FLOAT, [int(d) for d in shape])


def _tensor_names(plan: Plan) -> tuple[list[list[str]], list[list[str]]]:
    """ONNX names of every layer's bottoms and tops (module docstring: SSA renaming)."""
    last_writer: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        for name in step.top_names:
            last_writer[name] = i
    inputs = set(plan.inputs)
    current: dict[str, str] = {}
    used: set[str] = set()
    bottoms_out, tops_out = [], []
    for i, step in enumerate(plan.steps):
        layer = step.layer
        bottoms_out.append([current[b] for b in step.bottom_names])
        names = []
        for blob in step.top_names:
            if layer.type == "Input" or (last_writer[blob] == i and blob not in inputs):
                tensor = blob
            else:
                tensor = f"{blob}/{layer.name}"
            base, k = tensor, 1
            while tensor in used or (tensor != blob and tensor in last_writer):
                tensor, k = f"{base}_{k}", k + 1
            used.add(tensor)
            current[blob] = tensor
            names.append(tensor)
        tops_out.append(names)
    return bottoms_out, tops_out


def _no_mapping(name: str, layer_type: str) -> NetError:
    known = ", ".join(sorted(CONVERTERS))
    return NetError(f"has no ONNX mapping; exportable types are {known} (export the deploy "
                    "net, without data, loss or accuracy layers)", layer=name,
                    layer_type=layer_type)


def check_exportable(param: caffe_pb2.NetParameter) -> None:
    """Refuse a definition with a layer that cannot be exported before the net is compiled
    (a train_val net would otherwise fail first on opening its data sources). The layers
    checked are those of the TEST phase, under the definition's own level and stages."""
    from . import onnx_layers  # noqa: F401  (registers the converters)

    for layer in filter_net(param, net_state(param, caffe_pb2.TEST)).layer:
        if layer.type not in CONVERTERS:
            raise _no_mapping(layer.name, layer.type)


def net_to_onnx(net: Net, opset: int = OPSET) -> onnx.ModelProto:
    """``net`` (compiled, weights loaded) as an ONNX model with static shapes.

    Every layer must have a converter: a layer without one (data, loss, accuracy layers, or a
    type ONNX cannot express) is a NetError naming it; export a deploy net.
    """
    from . import onnx_layers  # noqa: F401  (registers the converters)

    if opset < MIN_OPSET:
        raise BrewnetError(f"ONNX opset {opset} is too old: Caffe's Softmax along one axis needs "
                           f"opset {MIN_OPSET} or later")
    onnx = _onnx()
    g = OnnxGraph(onnx)
    bottoms, tops = _tensor_names(net.plan)
    for tensors in tops:
        for t in tensors:
            g.reserve(t)
    for i, step in enumerate(net.plan.steps):
        layer = step.layer
        convert = CONVERTERS.get(layer.type)
        if convert is None:
            raise _no_mapping(layer.name, layer.type)
        view = LayerView(layer, bottoms[i], tops[i],
                         [tuple(int(d) for d in b.shape) for b in step.bottoms],
                         [tuple(int(d) for d in t.shape) for t in step.tops])
        convert(g, view)
    if not g.inputs:
        raise NetError(f"net '{net.name}' has no Input layer; ONNX export needs a deploy net "
                       "whose inputs are Input layers (or input: fields)")
    for name in net.outputs:
        g.output(name, net.blobs[name].shape)
    graph = onnx.helper.make_graph(g.nodes, net.name or "brewnet", g.inputs, g.outputs,
                                   initializer=g.initializers)
    from .. import __version__
    opsets = [onnx.helper.make_opsetid("", opset)]
    # The oldest IR version that knows the opset: a newer one would lock out older runtimes.
    model = onnx.helper.make_model(graph, producer_name="brewnet", producer_version=__version__,
                                   opset_imports=opsets,
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model


def export_onnx(net: Net, path: str | os.PathLike, opset: int = OPSET) -> onnx.ModelProto:
    """Write ``net`` as an ONNX model file at ``path`` (atomically); returns the model."""
    model = net_to_onnx(net, opset)
    atomic_write(path, model.SerializeToString())
    return model
