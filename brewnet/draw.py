"""Net drawings (pycaffe's ``caffe.draw``): the layer graph as Graphviz sees it, in the look of
Caffe's ``draw_net.py`` (layers as boxes coloured by type, blobs as octagons, in-place layers as
loops), with each top's shape on the edge that produces it when the net can be shape-inferred.

pydot builds the graph and Graphviz's ``dot`` program renders it; both are optional: a ``.dot``
file needs only pydot, an image needs ``dot`` too, and a missing one is a one-line error
saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import rng
from .errors import BrewnetError, NetError, ParseError, pycaffe_kind
from .fileio import atomic_write
from .log import log
from .net.compiler import compile_net
from .net.state import layer_included, net_state
from .proto import caffe_pb2
from .proto.textio import read_net, read_solver
from .proto.upgrade import upgrade_net
from .solver.netdefs import train_net_def

# Caffe's styles (python/caffe/draw.py).
LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

RANKDIRS = ("LR", "TB", "BT", "RL")
# Formats written as Graphviz source, without running dot.
SOURCE_FORMATS = ("dot", "gv")
_PARAMETRIC = ("Convolution", "Deconvolution", "InnerProduct")

NetLike = caffe_pb2.NetParameter | str | os.PathLike


# ----------------------------------------------------------------------------------------------
# pycaffe's label and colour helpers
# ----------------------------------------------------------------------------------------------
def get_pooling_types_dict() -> dict[int, str]:
    """Pooling method number → name (``{0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}``)."""
    return {v.number: name for name, v in
            caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer: caffe_pb2.LayerParameter) -> str:
    """Caffe's label for a layer's output edges: the batch of a Data layer, the output count of
    a Convolution/Deconvolution/InnerProduct, else the empty dot string ``'""'``."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer: caffe_pb2.LayerParameter) -> tuple[float, float]:
    """The (weight, bias) learning-rate multipliers of a Convolution, Deconvolution or
    InnerProduct layer; each is 1 unless its ParamSpec says otherwise, and the bias one is 0
    when the layer has no bias. Other layers are a ValueError, as in pycaffe's draw.py."""
    not_parametric = pycaffe_kind(NetError, ValueError)
    if layer.type not in _PARAMETRIC:
        raise not_parametric(f"{layer.type} layers do not have a learning rate multiplier; "
                             f"only {', '.join(_PARAMETRIC)} layers do",
                             layer=layer.name, layer_type=layer.type)
    if len(layer.param) > 2:
        raise not_parametric(f"has {len(layer.param)} param specs; a {layer.type} layer has "
                             "two parameters (weights, bias), so give at most two",
                             layer=layer.name, layer_type=layer.type)
    weight = layer.param[0].lr_mult if len(layer.param) > 0 else 1.0
    bias = layer.param[1].lr_mult if len(layer.param) > 1 else 1.0
    has_bias = (layer.inner_product_param if layer.type == "InnerProduct"
                else layer.convolution_param).bias_term
    return float(weight), float(bias) if has_bias else 0.0


def choose_color_by_layertype(layertype: str) -> str:
    """Caffe's fill colours: convolutions red, pooling orange, inner products purple, others
    blue."""
    if layertype in ("Convolution", "Deconvolution"):
        return "#FF5050"
    if layertype == "Pooling":
        return "#FF9900"
    if layertype == "InnerProduct":
        return "#CC33FF"
    return "#6495ED"


def _escape(text: str, record: bool = False) -> str:
    """Text safe inside a quoted dot string; in a record label (a layer box) also ``{}|<>``,
    which would start fields."""
    for char in '\\"{}|<>' if record else '\\"':
        text = text.replace(char, "\\" + char)
    return text


def _extent(values: list[int], default: int) -> str:
    """One number when all axes agree (Caffe's label), ``3×5`` when they differ."""
    values = values or [default]
    return str(values[0]) if len(set(values)) == 1 else "×".join(map(str, values))


def _spatial_descriptors(layer: caffe_pb2.LayerParameter) -> list[str]:
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.global_pooling:
            return ["global"]
        kernel = [p.kernel_h, p.kernel_w] if p.HasField("kernel_h") else [p.kernel_size]
        stride = [p.stride_h, p.stride_w] if p.HasField("stride_h") else [p.stride]
        pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") else [p.pad]
        dilation: list[int] = []
    else:
        p = layer.convolution_param
        kernel = [p.kernel_h, p.kernel_w] if p.HasField("kernel_h") else list(p.kernel_size)
        stride = [p.stride_h, p.stride_w] if p.HasField("stride_h") else list(p.stride)
        pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") else list(p.pad)
        dilation = list(p.dilation)
    out = [f"kernel size: {_extent(kernel, 1)}", f"stride: {_extent(stride, 1)}",
           f"pad: {_extent(pad, 0)}"]
    if any(d != 1 for d in dilation):
        out.append(f"dilation: {_extent(dilation, 1)}")
    return out


def get_layer_label(layer: caffe_pb2.LayerParameter, rankdir: str,
                    display_lrm: bool = False) -> str:
    """The quoted dot label of a layer box: name, type, the geometry of convolutions and
    pooling and, with ``display_lrm``, the learning-rate multipliers of learnable layers.

    Lines are stacked (``\\n``) when the graph runs left-right and joined by spaces when it
    runs top-bottom, where width is free and height is not.
    """
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    if layer.type == "Pooling":
        pool = get_pooling_types_dict().get(layer.pooling_param.pool, "?")
        kind = f"({pool} Pooling)"
    else:
        kind = f"({layer.type})"
    parts = [_escape(layer.name, record=True), _escape(kind, record=True)]
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        parts.extend(_spatial_descriptors(layer))
    if display_lrm and layer.type in _PARAMETRIC:
        weight, bias = get_layer_lr_mult(layer)
        if weight or bias:
            parts.append(f"lr mult: {weight:g}, {bias:g}")
    return '"' + separator.join(parts) + '"'


# ----------------------------------------------------------------------------------------------
# blob shapes
# ----------------------------------------------------------------------------------------------
def _constant_fillers(message: Any) -> None:
    """Make every FillerParameter inside ``message`` the default constant filler: shapes do
    not depend on initial values, and a big net would otherwise draw millions of numbers."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for item in (value if field.is_repeated else [value]):
            if item.DESCRIPTOR is caffe_pb2.FillerParameter.DESCRIPTOR:
                item.Clear()
            else:
                _constant_fillers(item)


def _shapes_only(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of ``net`` to compile for its shapes alone: constant fillers, no stored blobs
    (whose shapes the layers would otherwise check)."""
    copy = caffe_pb2.NetParameter()
    copy.CopyFrom(net)
    for lp in copy.layer:
        del lp.blobs[:]
    _constant_fillers(copy)
    return copy


def _layers_in(net: caffe_pb2.NetParameter, phase: int) -> set[int]:
    """Indices of the layers that exist in ``phase`` under the net's own level and stages."""
    state = net_state(net, phase)
    return {i for i, lp in enumerate(net.layer) if layer_included(lp, state)}


def blob_shapes(net: caffe_pb2.NetParameter, phase: int) -> dict[tuple[int, int], tuple[int, ...]]:
    """The shape of every top of the layers that exist in ``phase``, keyed by (index of the
    layer in ``net.layer``, index of the top).

    The compiler sets the net up, with constant weights, collecting its problems; nothing
    runs forward and the global random generator is left as it was. Data layers read their
    first record and no batch (their threads read from the first forward; the net is closed
    at once); ImageData and HDF5Data read their first file, as in a net. A layer that cannot
    be set up (a missing source, a definition error) and a Python layer (never imported here)
    leave their tops, and whatever is computed from them, without a shape; the log says why.
    """
    param = _shapes_only(net)
    with rng.left_as_it_was():
        plan = compile_net(param, net_state(net, phase), [None] * len(param.layer),
                           collect_problems=True, log_warnings=False)
    plan.close()
    shaped = {step.name for step in plan.steps}
    for e in plan.problems:
        if e.layer in shaped:  # planning backward failed: the layers still have their shapes
            continue
        who = f"layer '{e.layer}' ({e.layer_type})" if e.layer is not None else "a layer"
        log.warning(f"draw: no blob shapes below {who}: {str(e).removeprefix(who + ': ')}")
    return {(step.source_index, j): tuple(step.tops[j].shape) for step in plan.steps
            if step.source_index is not None for j in range(len(step.layer.param.top))}


def format_shapes(shapes: list[tuple[int, ...]]) -> str:
    """``64×1×28×28``; shapes that differ (a TRAIN and a TEST batch) show each differing
    dimension as ``64|100×1×28×28``; a 0-d blob (a loss) reads ``scalar``."""
    shapes = list(dict.fromkeys(shapes))
    if len({len(s) for s in shapes}) > 1:
        return " | ".join(format_shapes([s]) for s in shapes)
    if not shapes[0]:
        return "scalar"
    dims = ["|".join(dict.fromkeys(str(s[k]) for s in shapes)) for k in range(len(shapes[0]))]
    return "×".join(dims)


# ----------------------------------------------------------------------------------------------
# the graph
# ----------------------------------------------------------------------------------------------
def _import_pydot() -> Any:
    try:
        import pydot  # optional dependency
    except ImportError:
        raise BrewnetError("drawing nets needs the pydot package: pip install 'brewnet[draw]' "
                           "(or pip install pydot)") from None
    return pydot


def read_net_or_solver(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """A net prototxt, or the train net of a solver prototxt (read as Caffe's solver reads
    it: relative paths from the working directory, else beside the solver file)."""
    path = os.fspath(path)
    try:
        return read_net(path)
    except ParseError as net_error:
        try:
            solver = read_solver(path)
        except BrewnetError:
            raise net_error from None
    return train_net_def(solver, os.path.dirname(path) or None, where=path).param


def _as_net(caffe_net: NetLike) -> caffe_pb2.NetParameter:
    if isinstance(caffe_net, caffe_pb2.NetParameter):
        net = caffe_pb2.NetParameter()
        net.CopyFrom(caffe_net)
        return upgrade_net(net, net.name or "<NetParameter>")
    if isinstance(caffe_net, str | os.PathLike):
        return read_net_or_solver(caffe_net)
    raise TypeError(f"draw takes a NetParameter or a prototxt path, not "
                    f"{type(caffe_net).__name__}")


def _check_rankdir(rankdir: str) -> None:
    if rankdir not in RANKDIRS:
        raise BrewnetError(f"rankdir '{rankdir}' is not one of {', '.join(RANKDIRS)}")


def _edge_label(parts: list[Any]) -> str | None:
    """One label from what the occurrences of an edge say: shapes merged, other texts
    listed once."""
    shapes = [p for p in parts if isinstance(p, tuple)]
    texts = [p for p in dict.fromkeys(parts) if isinstance(p, str) and p != '""']
    lines = ([format_shapes(shapes)] if shapes else []) + texts
    return '"' + r"\n".join(_escape(t) for t in lines) + '"' if lines else None


def get_pydot_graph(caffe_net: NetLike, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> Any:
    """The net as a ``pydot.Dot`` graph.

    ``phase`` (``brewnet.TRAIN``/``TEST``) keeps the layers that exist in that phase under
    Caffe's NetState rules; None draws every layer. With ``label_edges``, each top's edge
    carries its shape where it can be inferred (both phases' shapes when ``phase`` is None),
    else Caffe's label (batch size, output count).
    """
    pydot = _import_pydot()
    net = _as_net(caffe_net)
    _check_rankdir(rankdir)
    phases = (caffe_pb2.TRAIN, caffe_pb2.TEST) if phase is None else (int(phase),)
    members = {ph: _layers_in(net, ph) for ph in phases}
    shapes: dict[int, dict[tuple[int, int], tuple[int, ...]]] = {}
    for ph in phases if label_edges else ():
        # Both phases hold the same layers in most deploy nets: infer their shapes once.
        twin = next((q for q in shapes if members[q] == members[ph]), None)
        shapes[ph] = shapes[twin] if twin is not None else blob_shapes(net, ph)
    graph = pydot.Dot(net.name or "Net", graph_type="digraph", rankdir=rankdir)
    graph.set_node_defaults(fontname="Helvetica")
    graph.set_edge_defaults(fontname="Helvetica", fontsize="12")
    nodes: dict[str, Any] = {}  # dot id -> node, in drawing order
    layer_ids: dict[tuple[str, str], str] = {}
    blob_ids: dict[str, str] = {}
    edges: dict[tuple[str, str], list[Any]] = {}

    def blob_id(name: str) -> str:
        if name not in blob_ids:
            blob_ids[name] = f"blob{len(blob_ids)}"
            nodes[blob_ids[name]] = pydot.Node(blob_ids[name], label=f'"{_escape(name)}"',
                                               **BLOB_STYLE)
        return blob_ids[name]

    for i, lp in enumerate(net.layer):
        if phase is not None and i not in members[phase]:
            continue
        key = (lp.name, lp.type)
        if key not in layer_ids:  # Caffe merges same-named layers of TRAIN and TEST
            layer_ids[key] = f"layer{len(layer_ids)}"
            in_place = len(lp.bottom) == 1 and len(lp.top) == 1 and lp.bottom[0] == lp.top[0]
            style = dict(NEURON_LAYER_STYLE if in_place else LAYER_STYLE_DEFAULT)
            if not in_place:
                style["fillcolor"] = choose_color_by_layertype(lp.type)
            label = get_layer_label(lp, rankdir, display_lrm=display_lrm)
            nodes[layer_ids[key]] = pydot.Node(layer_ids[key], label=label, **style)
        layer_id = layer_ids[key]
        for name in lp.bottom:
            edges.setdefault((blob_id(name), layer_id), [])
        for j, name in enumerate(lp.top):
            parts = edges.setdefault((layer_id, blob_id(name)), [])
            if not label_edges:
                continue
            known = [shapes[ph][(i, j)] for ph in phases if (i, j) in shapes[ph]]
            parts.extend(known or [get_edge_label(lp)])
    for node in nodes.values():
        graph.add_node(node)
    for (src, dst), parts in edges.items():
        label = _edge_label(parts)
        graph.add_edge(pydot.Edge(src, dst, **({"label": label} if label else {})))
    return graph


def render(dot_source: str, ext: str) -> bytes:
    """``dot_source`` as a file of format ``ext`` (png, svg, pdf, ...; dot/gv is the source
    itself), rendered by Graphviz's ``dot`` program."""
    fmt = ext.lower().lstrip(".")
    if fmt in SOURCE_FORMATS:
        return dot_source.encode("utf-8")
    program = shutil.which("dot")
    if program is None:
        raise BrewnetError(f"drawing a .{fmt} needs Graphviz's dot program: apt-get install "
                           "graphviz (or brew install graphviz); a .dot file needs only pydot")
    done = subprocess.run([program, f"-T{fmt}"], input=dot_source.encode("utf-8"),
                          capture_output=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        # dot follows an unknown format with the list of every format it knows: drop it.
        reason = lines[0].split(". Use one of")[0] if lines else f"exit {done.returncode}"
        raise BrewnetError(f"Graphviz dot could not write .{fmt}: {reason}")
    return done.stdout


def draw_net(caffe_net: NetLike, rankdir: str, ext: str = "png", phase: int | None = None,
             display_lrm: bool = False) -> bytes:
    """The drawing as bytes of format ``ext`` (``'dot'`` gives the Graphviz source)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    return render(graph.to_string(), ext)


def draw_net_to_file(caffe_net: NetLike, filename: str | os.PathLike, rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Write the drawing to ``filename``, in the format its extension names (.png, .svg,
    .pdf, .dot), atomically."""
    ext = Path(filename).suffix.lstrip(".")
    if not ext:
        raise BrewnetError(f"{os.fspath(filename)}: give the file an extension naming the "
                           "format (.png, .svg, .pdf or .dot)")
    atomic_write(filename, draw_net(caffe_net, rankdir, ext, phase=phase,
                                    display_lrm=display_lrm))
