"""Coordinate maps between NetSpec tops (pycaffe's ``caffe.coord_map``): where a spatial position
of one top lies in another, through Convolution, Pooling, Deconvolution, Crop and element-wise
layers, and the Crop layer that aligns two tops, as the FCN nets build their skip connections.

A map is ``(axis, scale, shift)``: position ``x`` along a spatial axis of a layer's bottom is
position ``scale * x + shift`` in its top. ``axis`` is the last non-spatial axis (the channel
axis, 1, for N×C×H×W) and None for a layer that leaves positions alone (ReLU, Eltwise). Scale and
shift hold one value per spatial axis, or one for all of them. The walk keeps them as exact
fractions, so a crop offset is never an integer spoiled by float rounding; ``coord_map`` and
``coord_map_from_to`` return float arrays, as pycaffe does.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import NetError, pycaffe_kind
from .layers.registry import keeps_coordinates
from .netspec import Top, layers
from .netspec.spec import Function
from .proto import caffe_pb2

_CONV_LIKE = ("Convolution", "Pooling", "Im2col")

Map = tuple[Any, np.ndarray, np.ndarray]  # (axis or None, scale, shift)


class UndefinedMapException(NetError):
    """A layer type without a coordinate map (InnerProduct, global pooling...): the walk
    between two tops cannot pass through it."""


class AxisMismatchException(NetError):
    """Two maps on a path disagree on which axes are spatial."""


def _layer_param(fn: Function) -> caffe_pb2.LayerParameter:
    """The layer's parameters as the schema reads them, so defaults and both spellings
    (``kernel_size=3`` or ``convolution_param=dict(kernel_size=3)``) are handled alike."""
    lp = caffe_pb2.LayerParameter(type=fn.type_name)
    fn._fill_params(lp)
    return lp


def _nonnegative_axis(axis: int, fn: Function, field: str) -> int:
    if axis < 0:
        raise NetError(f"{field} is {axis}; coordinate maps need it counted from the front "
                       "(e.g. 1 for N×C×H×W) since NetSpec does not know the number of axes",
                       layer_type=fn.type_name, field=field)
    return axis


def _per_axis(repeated: Any, h: int, w: int, has_hw: bool, default: int) -> list[int]:
    """A repeated geometry field, or the legacy ``_h``/``_w`` pair when those are set."""
    if has_hw:
        return [int(h), int(w)]
    return [int(v) for v in repeated] or [default]


def conv_params(fn: Function) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(axis, stride, effective kernel extent, pad)`` of a Convolution, Deconvolution, Im2col
    or Pooling layer; the extent counts dilation, ``(kernel - 1) * dilation + 1``."""
    lp = _layer_param(fn)
    if fn.type_name == "Pooling":
        p = lp.pooling_param
        if p.global_pooling:
            raise UndefinedMapException("global pooling has no coordinate map (every output "
                                        "sees the whole input)", layer_type=fn.type_name)
        kernel = [p.kernel_h, p.kernel_w] if p.HasField("kernel_h") else [p.kernel_size]
        stride = [p.stride_h, p.stride_w] if p.HasField("stride_h") else [p.stride]
        pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") else [p.pad]
        dilation, axis = [1], 1
    else:
        p = lp.convolution_param
        kernel = _per_axis(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h"), 1)
        stride = _per_axis(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1)
        pad = _per_axis(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0)
        dilation = [int(d) for d in p.dilation] or [1]
        axis = _nonnegative_axis(p.axis, fn, "convolution_param.axis")
    if min(kernel) <= 0:
        raise NetError("needs a kernel size (kernel_size, or kernel_h and kernel_w) for its "
                       "coordinate map", layer_type=fn.type_name)
    extent = (np.array(kernel, dtype=np.int64) - 1) * np.array(dilation, dtype=np.int64) + 1
    return (axis, np.array(stride, dtype=np.int64), extent, np.array(pad, dtype=np.int64))


def crop_params(fn: Function) -> tuple[int, np.ndarray]:
    """``(axis, offset)`` of a Crop layer with Caffe's defaults (axis 2, offset 0)."""
    p = _layer_param(fn).crop_param
    axis = _nonnegative_axis(p.axis, fn, "crop_param.axis")
    return axis, np.array([int(o) for o in p.offset] or [0], dtype=np.int64)


_fraction = np.frompyfunc(Fraction, 2, 1)  # elementwise Fraction(numerator, denominator)


def _exact_map(fn: Function) -> Map:
    """The layer's map with Fraction entries. A convolution's output ``i`` is centred on input
    ``stride * i - pad + (extent - 1) / 2``; a deconvolution is the inverse; a crop shifts
    by its offset."""
    if fn.type_name in _CONV_LIKE or fn.type_name == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        if fn.type_name == "Deconvolution":
            return axis, _fraction(stride, 1), _fraction(extent - 1 - 2 * pad, 2)
        return axis, _fraction(1, stride), _fraction(2 * pad - (extent - 1), 2 * stride)
    if keeps_coordinates(fn.type_name):
        return None, _fraction(np.array([1]), 1), _fraction(np.array([0]), 1)
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, _fraction(np.ones_like(offset), 1), _fraction(-offset, 1)
    raise UndefinedMapException(f"{fn.type_name} has no coordinate map; coord_map follows only "
                                "Convolution, Deconvolution, Pooling, Crop and element-wise "
                                "layers", layer_type=fn.type_name)


def coord_map(fn: Function) -> Map:
    """pycaffe's per-layer map ``(axis, scale, shift)`` as float arrays."""
    axis, scale, shift = _exact_map(fn)
    return axis, scale.astype(np.float64), shift.astype(np.float64)


def compose(base_map: Map, next_map: Map) -> Map:
    """``base_map`` after ``next_map``: scales multiply and the later shift is scaled by the
    earlier scale. A None axis takes the other's; two different axes are an error."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"the path mixes maps over spatial axes after axis {ax1} "
                                    f"and after axis {ax2}; give the layers one axis")
    try:
        return (ax2 if ax1 is None else ax1), a1 * a2, a1 * b2 + b1
    except ValueError:  # numpy broadcasting of unequal per-axis lengths
        raise AxisMismatchException(f"the path mixes maps over {len(a1)} and {len(a2)} "
                                    "spatial axes") from None


def inverse(coord_map: Map) -> Map:
    """The map from top positions back to bottom positions."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _mappable_bottoms(fn: Function) -> tuple[Top, ...]:
    """A Crop's second bottom only gives the size, so positions come through the first."""
    return fn.inputs[:1] if fn.type_name == "Crop" else fn.inputs


def _maps_to(top: Top) -> dict[Top, Map]:
    """Every top upstream of ``top`` reachable through layers with maps, each with the map from
    its positions to ``top``'s, nearest first."""
    maps: dict[Top, Map] = {top: (None, _fraction(np.array([1]), 1),
                                  _fraction(np.array([0]), 1))}
    queue = deque([top])
    while queue:
        current = queue.popleft()
        try:
            step = _exact_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _mappable_bottoms(current.fn):
            if bottom not in maps:
                maps[bottom] = compose(maps[current], step)
                queue.append(bottom)
    return maps


def _describe(top: Top) -> str:
    return f"the {top.fn.type_name} top" if top.fn.ntop == 1 else \
        f"top {top.n} of the {top.fn.type_name}"


def _exact_from_to(top_from: Top, top_to: Top) -> Map:
    from_maps = _maps_to(top_from)
    for ancestor, to_map in _maps_to(top_to).items():  # nearest common ancestor first
        if ancestor in from_maps:
            return compose(to_map, inverse(from_maps[ancestor]))
    raise pycaffe_kind(NetError, RuntimeError)(  # as pycaffe's coord_map_from_to
        f"no coordinate map from {_describe(top_from)} to {_describe(top_to)}: they share no "
        "input reachable through Convolution, Deconvolution, Pooling, Crop and element-wise "
        "layers")


def coord_map_from_to(top_from: Top, top_to: Top) -> Map:
    """The map ``(axis, scale, shift)`` from positions in ``top_from`` to positions in
    ``top_to``, found through their nearest common ancestor."""
    axis, scale, shift = _exact_from_to(top_from, top_to)
    return axis, scale.astype(np.float64), shift.astype(np.float64)


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer cutting ``top_from`` to ``top_to``'s extent and position (FCN's
    ``crop(upscore, data)``): the offsets are where ``top_to``'s origin lies in ``top_from``."""
    axis, scale, shift = _exact_from_to(top_from, top_to)
    what = f"cannot crop {_describe(top_from)} to {_describe(top_to)}"
    refused = pycaffe_kind(NetError, AssertionError)  # pycaffe's crop asserts these three
    if any(a != 1 for a in scale):
        raise refused(f"{what}: their scales differ (factor {_text(scale)}); upsample or "
                      "downsample one of them first")
    if any(b > 0 for b in shift):
        raise refused(f"{what}: it would need a negative offset ({_text(-shift)}); the top to "
                      "crop must cover the other, so pad its input more")
    if any(b.denominator != 1 for b in shift):
        raise refused(f"{what}: the offset {_text(-shift)} is not a whole number of pixels; "
                      "adjust kernel sizes or padding so the centres align")
    offsets = [int(-b) for b in shift]
    return layers.Crop(top_from, top_to,
                       crop_param=dict(axis=2 if axis is None else axis + 1, offset=offsets))


def _text(values: np.ndarray) -> str:
    return ", ".join(str(v) for v in values)
