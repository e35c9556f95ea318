"""The deploy net of a train_val net, the file Caffe users write by hand beside it (BVLC issue
#2545): the TEST-phase net with each data layer replaced by an Input layer shaped like the tops
it delivered, every loss and metric removed — a Softmax named ``prob`` in place of a
SoftmaxWithLoss (the loss class's ``deploy_as``) — and every layer that served only them (the
labels, layers left without consumers) pruned.

Inputs arrive preprocessed, as in Caffe's hand-written deploy files: a data layer's
``transform_param`` (crop, mean, scale) does not become layers. ``Deployment.preprocessing``
says what a caller must apply, and the written file carries it as a comment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..blob import Blob
from ..errors import BrewnetError, NetError
from ..layers.base import Layer
from ..layers.registry import is_data_source, layer_class
from ..proto import caffe_pb2
from ..proto.blobproto import blobproto_shape
from ..proto.positions import Node
from ..proto.textio import read_net_located, to_text
from ..proto.upgrade import upgrade_net
from .locate import locate_layer_error, source_nodes
from .state import filter_net, included_layers, net_state

PROB = "prob"  # Caffe's deploy files name the class probabilities so


@dataclass
class Deployment:
    """A derived deploy net and, one line per input, the preprocessing its inputs need."""

    net: caffe_pb2.NetParameter
    preprocessing: list[str]

    def to_text(self, source: str) -> str:
        """The prototxt, headed by a comment saying where it came from and how to feed it."""
        header = [f"# Deploy net derived from {source} by `brewnet deploy`."]
        if self.preprocessing:
            header += ["# Feed it what the train_val's TEST-phase data layers delivered: float32 "
                       "(N, C, H, W),",
                       "# channels in the source's order (BGR for images stored by Caffe's "
                       "tools), preprocessed:"]
        header += [f"#   {line}" for line in self.preprocessing]
        return "\n".join(header) + "\n" + to_text(self.net)


def deploy_net(net_param: caffe_pb2.NetParameter | str | os.PathLike, *,
               batch: int | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
               level: int = 0, stages: Sequence[str] = ()) -> caffe_pb2.NetParameter:
    """The deploy NetParameter of a train_val net (a NetParameter or a prototxt path); see
    :func:`derive_deploy` for the keywords."""
    return derive_deploy(net_param, batch=batch, shapes=shapes, level=level, stages=stages).net


def derive_deploy(net_param: caffe_pb2.NetParameter | str | os.PathLike, *,
                  batch: int | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
                  level: int = 0, stages: Sequence[str] = (), source: str | None = None,
                  layout: Node | None = None) -> Deployment:
    """Derive the deploy net of ``net_param`` and its inputs' preprocessing (a NetParameter
    read by the caller from ``source`` comes with its ``layout``, for located errors). The
    TEST net is the one Caffe builds at ``level`` with ``stages`` added to the file's state.

    An input's shape is ``shapes[top]`` where given (one record's dims, without the batch
    axis), else the data layer's own (it is set up once: crop size and the source's first
    record), else, when the source cannot be read, ``crop_size`` with channels known from
    ``mean_value``, ``force_color``/``force_gray`` or the mean file. ``batch`` replaces the
    first axis of every input (default: the data layer's batch size).
    """
    if batch is not None and batch <= 0:
        raise BrewnetError(f"the batch size (--batch, batch=) must be positive, got {batch}")
    if isinstance(net_param, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(net_param)
        upgrade_net(param, source or "<NetParameter>")
    else:
        source = os.fspath(net_param)
        param, layout = read_net_located(source)
    nodes = source_nodes(param, layout)
    state = net_state(param, caffe_pb2.TEST)
    state.level = level
    state.stage.extend(stages)
    return _Derivation(param, state, nodes, source, dict(shapes or {}), batch).run()


def reads_data_sources(param: caffe_pb2.NetParameter) -> bool:
    """Whether the TEST net of ``param`` has a data layer: a train_val, not a deploy net."""
    test_net = filter_net(param, net_state(param, caffe_pb2.TEST))
    return any(is_data_source(lp.type) for lp in test_net.layer)


class _Derivation:
    def __init__(self, param: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
                 nodes: list[Node | None], file: str | None, shapes: dict[str, Sequence[int]],
                 batch: int | None):
        self.param, self.file, self.shapes, self.batch = param, file, shapes, batch
        try:
            kept = included_layers(param, state)
        except BrewnetError as e:
            bad = next(k for k, lp in enumerate(param.layer) if lp.name == e.layer)
            raise locate_layer_error(e, param.layer[bad], nodes[bad], file) from None
        self.layers = [param.layer[k] for k in kept]
        self.nodes = [nodes[k] for k in kept]
        self.classes = [self._class(lp, node) for lp, node in zip(self.layers, self.nodes,
                                                                  strict=True)]

    def _class(self, lp: caffe_pb2.LayerParameter, node: Node | None) -> type[Layer]:
        try:
            return layer_class(lp.type)
        except KeyError as e:
            error = NetError(e.args[0], layer=lp.name, layer_type=lp.type)
            raise locate_layer_error(error, lp, node, self.file) from None

    def run(self) -> Deployment:
        replaced = self._replacements()
        keep = self._needed(replaced)
        out = caffe_pb2.NetParameter()
        out.CopyFrom(self.param)
        del out.layer[:]
        out.ClearField("state")  # the phase and stage rules are applied: none are left
        written: set[str] = set()
        for i, lp in enumerate(self.layers):
            if keep[i]:
                layer = replaced.get(i, lp)
                self._check_bottoms(i, layer, written)
                written.update(keep[i] if self.classes[i].is_data_source else layer.top)
        inputs = [name for lp, cls, tops in zip(self.layers, self.classes, keep, strict=True)
                  if cls.is_data_source for name in lp.top if name in tops]
        unknown = sorted(set(self.shapes) - set(inputs))
        if unknown:
            raise BrewnetError(f"a shape is given for {', '.join(map(repr, unknown))}, which "
                               f"{'is' if len(unknown) == 1 else 'are'} not among the "
                               f"deploy net's data inputs ({', '.join(inputs) or 'none'})",
                               file=self.file)
        names = {lp.name for lp, tops in zip(self.layers, keep, strict=True) if tops}
        preprocessing = []
        for i, lp in enumerate(self.layers):
            if not keep[i]:
                continue
            if self.classes[i].is_data_source:
                layer, note = self._input(i, keep[i], names)
                preprocessing.append(note)
            else:
                layer = replaced.get(i, lp)
            kept = out.layer.add()
            kept.CopyFrom(layer)
            kept.ClearField("include")
            kept.ClearField("exclude")
        if self.batch is not None:
            for lp in out.layer:
                for shape in lp.input_param.shape if lp.type == "Input" else ():
                    if len(shape.dim):
                        shape.dim[0] = self.batch
        return Deployment(out, preprocessing)

    def _check_bottoms(self, i: int, layer: caffe_pb2.LayerParameter, written: set[str]
                       ) -> None:
        """Refuse a deploy net that reads a blob no earlier layer writes: its producer is
        outside this TEST net (BVLC's autoencoder puts its data layers under stages)."""
        missing = [name for name in layer.bottom if name not in written]
        if missing:
            error = NetError(f"bottom '{missing[0]}' is produced by no earlier layer of the "
                             "TEST net; if its producer has include/exclude rules, choose "
                             "them with --stage/--level (stages=, level=)", layer=layer.name,
                             layer_type=layer.type, blob=missing[0], field="bottom")
            raise locate_layer_error(error, self.layers[i], self.nodes[i], self.file)

    def _replacements(self) -> dict[int, caffe_pb2.LayerParameter]:
        """For each loss with a ``deploy_as`` type, the layer in its place: on the loss's
        prediction, topped ``prob`` (the one of largest loss weight), else ``<loss>_prob``."""
        taken = {name for lp in self.layers for name in (lp.name, *lp.top)}
        losses = [i for i, cls in enumerate(self.classes) if cls.deploy_as and
                  len(self.layers[i].bottom)]
        weights = [self.layers[i].loss_weight[0] if len(self.layers[i].loss_weight) else 1.0
                   for i in losses]
        main = losses[weights.index(max(weights))] if losses else None
        replaced = {}
        for i in losses:
            loss, kind = self.layers[i], self.classes[i].deploy_as
            name = _unused(PROB if i == main else f"{loss.name}_{PROB}", taken)
            lp = caffe_pb2.LayerParameter(name=name, type=kind, bottom=[loss.bottom[0]],
                                          top=[name])
            for field in layer_class(kind).param_fields:
                if loss.HasField(field):
                    getattr(lp, field).CopyFrom(getattr(loss, field))
            replaced[i] = lp
        return replaced

    def _needed(self, replaced: dict[int, caffe_pb2.LayerParameter]) -> list[set[str]]:
        """Per layer, the tops the deploy net needs from it (empty: the layer goes): walking
        back from the outputs — what each loss and metric scored, each replacement's top,
        and what the TEST net leaves unconsumed elsewhere (its outputs, as Caffe counts
        them: in-place tops included)."""
        scoring = [cls.is_loss or cls.is_metric for cls in self.classes]
        available: dict[str, int] = {}
        for i, lp in enumerate(self.layers):
            for name in lp.bottom:
                available.pop(name, None)
            for name in lp.top:
                available[name] = i
        wanted = {name for name, i in available.items()
                  if not scoring[i] and not self.classes[i].is_data_source}
        for i, lp in enumerate(self.layers):
            if scoring[i]:
                wanted.update(replaced[i].top if i in replaced else lp.bottom[:1])
        keep: list[set[str]] = [set() for _ in self.layers]
        for i in reversed(range(len(self.layers))):
            lp = replaced.get(i, None if scoring[i] else self.layers[i])
            if lp is None:
                continue
            keep[i] = {name for name in lp.top if name in wanted}
            if keep[i]:
                wanted.update(lp.bottom)
        return keep

    def _input(self, i: int, tops: set[str], names: set[str]
               ) -> tuple[caffe_pb2.LayerParameter, str]:
        """The Input layer in place of data layer ``i``, for its ``tops`` the net reads, and
        the preprocessing line of its first; named after that top as in Caffe's deploy files
        (unless a layer of the net already has that name)."""
        lp, node = self.layers[i], self.nodes[i]
        order = [name for name in lp.top if name in tops]
        try:
            dims = self._shapes(lp, self.classes[i], order)
        except BrewnetError as e:
            raise locate_layer_error(e, lp, node, self.file) from None
        name = order[0] if order[0] not in names - {lp.name} else lp.name
        layer = caffe_pb2.LayerParameter(name=name, type="Input", top=order)
        for shape in dims:
            layer.input_param.shape.add().dim.extend(shape)
        shown = (self.batch or dims[0][0], *dims[0][1:])
        return layer, f"{order[0]} {shown}: {_describe(lp.transform_param)}"

    def _shapes(self, lp: caffe_pb2.LayerParameter, cls: type[Layer], tops: list[str]
                ) -> list[tuple[int, ...]]:
        """Each of ``tops``'s shape (batch axis first): given, the layer's own, or from the
        crop size; else an error saying how to give it."""
        batch = _batch_size(lp, cls)
        given = {t: (batch, *(int(d) for d in self.shapes[t])) for t in tops if t in self.shapes}
        if len(given) == len(tops):
            return [given[t] for t in tops]
        try:
            own = _set_up_shapes(lp, cls)
        except BrewnetError as e:
            cropped = _cropped_shape(lp.transform_param)
            if cropped is None or tops[0] in given or len(tops) > 1:
                crop = lp.transform_param.crop_size
                dims = f"C,{crop},{crop}" if crop else "C,H,W"
                wanted = " ".join(f"--shape {t}={dims}" for t in tops if t not in given)
                raise NetError(f"{e.message}; without its source, give one record's shape "
                               f"with {wanted} (Python: shapes={{'{tops[0]}': (C, H, W)}})",
                               layer=lp.name, layer_type=lp.type) from None
            own = {tops[0]: (batch, *cropped)}
        return [given.get(t, own[t]) for t in tops]


def _set_up_shapes(lp: caffe_pb2.LayerParameter, cls: type[Layer]
                   ) -> dict[str, tuple[int, ...]]:
    """The top shapes data layer ``lp`` gives itself: set up once (its first record), closed."""
    layer = cls(lp, caffe_pb2.TEST)
    tops = [Blob() for _ in lp.top]
    try:
        layer.set_up([], tops)
    finally:
        layer.close()
    return {name: tuple(int(d) for d in t.shape) for name, t in zip(lp.top, tops, strict=True)}


def _batch_size(lp: caffe_pb2.LayerParameter, cls: type[Layer]) -> int:
    """The ``batch_size`` of the layer's own ``*_param`` message, 1 where it has none."""
    own = getattr(lp, cls.param_fields[0]) if cls.param_fields else None
    return int(getattr(own, "batch_size", 0)) or 1


def _cropped_shape(tp: caffe_pb2.TransformationParameter) -> tuple[int, int, int] | None:
    """(C, crop, crop) when ``crop_size`` is set and the channels are known without the
    source: from ``force_gray``/``force_color``, one ``mean_value`` per channel, or the
    mean file's shape."""
    if not tp.crop_size:
        return None
    channels = 1 if tp.force_gray else 3 if tp.force_color else 0
    if not channels and len(tp.mean_value) > 1:
        channels = len(tp.mean_value)
    if not channels and tp.mean_file:
        try:
            with open(tp.mean_file, "rb") as f:
                dims = blobproto_shape(caffe_pb2.BlobProto.FromString(f.read()))
            channels = dims[-3] if len(dims) >= 3 else 0
        except (OSError, ValueError):  # unreadable: the channels stay unknown
            channels = 0
    return (channels, tp.crop_size, tp.crop_size) if channels else None


def _describe(tp: caffe_pb2.TransformationParameter) -> str:
    """What ``transform_param`` does to each record in the TEST phase, in Caffe's order:
    crop (centred), subtract the mean at the crop's position, multiply by the scale."""
    steps = []
    if tp.force_color or tp.force_gray:
        steps.append(f"decode images as {'colour' if tp.force_color else 'grayscale'}")
    if tp.crop_size:
        steps.append(f"crop the centre {tp.crop_size}x{tp.crop_size}")
    at = " (at the same crop)" if tp.crop_size else ""
    if tp.mean_file:
        steps.append(f"subtract the mean image {tp.mean_file}{at}")
    elif len(tp.mean_value):
        values = ", ".join(_number(v) for v in tp.mean_value)
        steps.append(f"subtract the mean value{'s' if len(tp.mean_value) > 1 else ''} "
                     f"{values} (per channel)")
    if tp.scale != 1:
        steps.append(f"multiply by {_number(tp.scale)}")
    if tp.mirror:
        steps.append("(the train_val's random mirroring is not applied)")
    return "; ".join(steps) if steps else "the source's values unchanged"


def _number(value: float) -> str:
    """A float32 field as the shortest text that reads back as the same float32 (the
    transformer's arithmetic is float32): 0.00390625, 0.0039215684, 104."""
    return np.format_float_positional(np.float32(value), trim="-")


def _unused(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... if a layer or blob of the net has it; reserved."""
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate
