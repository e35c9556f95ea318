"""``debug_info: true``: Caffe's per-blob magnitudes (mean absolute value, ``asum / count``) of
every top after its layer's forward, every bottom gradient and parameter gradient after its
layer's backward, and every parameter after the update, worded as Caffe's Net prints them.

As in Caffe, they are printed on display iterations only, for the train net. The pass runs one
layer at a time so each ``[Forward]`` line shows the top as its layer left it, before any
in-place successor rewrote it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..log import log
from .report import num


def supported(net: Any) -> bool:
    """Whether ``net`` exposes the per-layer structure the report walks (brewnet's Net)."""
    return all(hasattr(net, a) for a in ("layers", "top_vecs", "bottom_vecs", "_forward",
                                         "_backward", "layer_need_backward",
                                         "bottom_need_backward"))


def mean_abs(x: Any) -> np.float32:
    """Caffe's ``asum / count`` in float32 (NaN for an empty blob, as Caffe's 0/0)."""
    xp = get_array_module(x)
    asum = np.float32(float(xp.abs(x).sum(dtype=np.float32)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return asum / np.float32(x.size)


def _sums(x: Any) -> tuple[np.float32, np.float32]:
    """(asum, sumsq) in float32, Caffe's Blob::asum_* and sumsq_*."""
    xp = get_array_module(x)
    flat = x.ravel()
    return (np.float32(float(xp.abs(flat).sum(dtype=np.float32))),
            np.float32(float(flat.dot(flat))))


def param_display_names(net: Any) -> list[list[str]]:
    """Per layer, each parameter's display name: its ParamSpec ``name`` if set, else its
    index in the layer (Caffe's param_display_names_)."""
    out = []
    for layer in net.layers:
        specs = layer.param.param
        out.append([specs[j].name if j < len(specs) and specs[j].name else str(j)
                    for j in range(len(layer.blobs))])
    return out


def _owners(net: Any) -> list[list[tuple[int, int] | None]]:
    """Per layer and parameter, None for a parameter that owns itself, else the (layer, index)
    of the earlier parameter of the same ParamSpec name it shares (Caffe's param_owners_)."""
    first: dict[str, tuple[int, int]] = {}
    out = []
    for i, layer in enumerate(net.layers):
        specs, row = layer.param.param, []
        for j in range(len(layer.blobs)):
            name = specs[j].name if j < len(specs) else ""
            if name and name in first:
                row.append(first[name])
            else:
                if name:
                    first[name] = (i, j)
                row.append(None)
        out.append(row)
    return out


def _top_names(net: Any, i: int) -> list[str]:
    names = net.top_names.get(net.layers[i].name)
    return list(names) if names else [str(j) for j in range(len(net.top_vecs[i]))]


def _bottom_names(net: Any, i: int) -> list[str]:
    names = net.bottom_names.get(net.layers[i].name)
    return list(names) if names else [str(j) for j in range(len(net.bottom_vecs[i]))]


def forward_lines(net: Any, i: int, display: list[list[str]] | None = None) -> list[str]:
    """Caffe's ForwardDebugInfo for layer ``i``: each top's data, then each parameter's."""
    display = display or param_display_names(net)
    name = net.layers[i].name
    lines = [f"    [Forward] Layer {name}, top blob {blob} data: {num(mean_abs(top.data))}"
             for blob, top in zip(_top_names(net, i), net.top_vecs[i], strict=True)]
    lines += [f"    [Forward] Layer {name}, param blob {shown} data: {num(mean_abs(p.data))}"
              for shown, p in zip(display[i], net.layers[i].blobs, strict=True)]
    return lines


def backward_lines(net: Any, i: int) -> list[str]:
    """Caffe's BackwardDebugInfo for layer ``i``: the diff of each bottom that gets a gradient,
    then of each parameter that does (numbered by index, as Caffe)."""
    layer, name = net.layers[i], net.layers[i].name
    lines = [f"    [Backward] Layer {name}, bottom blob {blob} diff: {num(mean_abs(b.diff))}"
             for blob, b, need in zip(_bottom_names(net, i), net.bottom_vecs[i],
                                      net.bottom_need_backward[i], strict=True) if need]
    propagate = list(getattr(layer, "param_propagate_down", ())) or [True] * len(layer.blobs)
    lines += [f"    [Backward] Layer {name}, param blob {j} diff: {num(mean_abs(p.diff))}"
              for j, (p, need) in enumerate(zip(layer.blobs, propagate, strict=False)) if need]
    return lines


def all_params_line(net: Any) -> str:
    """Caffe's summary after the backward pass: L1 and L2 norms of all learnable parameters'
    data and diffs."""
    asum_data = asum_diff = sumsq_data = sumsq_diff = np.float32(0)
    for p in net.learnable_params:
        a, s = _sums(p.data)
        asum_data, sumsq_data = asum_data + a, sumsq_data + s
        a, s = _sums(p.diff)
        asum_diff, sumsq_diff = asum_diff + a, sumsq_diff + s
    return (f"    [Backward] All net params (data, diff): L1 norm = ({num(asum_data)}, "
            f"{num(asum_diff)}); L2 norm = ({num(np.sqrt(sumsq_data))}, "
            f"{num(np.sqrt(sumsq_diff))})")


def update_lines(net: Any) -> list[str]:
    """Caffe's UpdateDebugInfo for every parameter, after the update: data and the applied
    update (``diff``) of parameters that own themselves; for shared ones, the owner."""
    display, owners = param_display_names(net), _owners(net)
    lines = []
    for i, layer in enumerate(net.layers):
        for j, p in enumerate(layer.blobs):
            owner = owners[i][j]
            diff = num(mean_abs(p.diff))
            if owner is None:
                lines.append(f"    [Update] Layer {layer.name}, param {display[i][j]} data: "
                             f"{num(mean_abs(p.data))}; diff: {diff}")
            else:
                oi, oj = owner
                lines.append(f"    [Update] Layer {layer.name}, param blob {display[i][j]} "
                             f"(owned by layer {net.layers[oi].name}, param {display[oi][oj]}) "
                             f"diff: {diff}")
    return lines


def forward_backward(net: Any) -> float:
    """One forward/backward pass of ``net``, layer by layer, logging Caffe's debug lines as it
    goes; returns the loss, as ``net.forward_backward()`` does."""
    display = param_display_names(net)
    loss = np.float32(0)
    n = len(net.layers)
    for i in range(n):
        loss += np.float32(net._forward(i, i))
        for line in forward_lines(net, i, display):
            log.info(line)
    for i in range(n - 1, -1, -1):
        if net.layer_need_backward[i]:
            net._backward(i, i)
            for line in backward_lines(net, i):
                log.info(line)
    log.error(all_params_line(net))  # Caffe logs this one at ERROR level
    return float(loss)


def log_update(net: Any) -> None:
    for line in update_lines(net):
        log.info(line)
