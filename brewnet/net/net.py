"""The compiler and runtime of a net: from a NetParameter to a static graph of layers wired
by named blobs, with Caffe's construction rules (``Net::Init``) and pycaffe's Net API.

Construction, in Caffe's order: upgrade legacy forms → filter by NetState → insert Split
layers → for each layer: create it from the registry, wire bottoms and tops by name,
set it up (shapes inferred), set loss weights, share parameters by ParamSpec name → plan
backward (which layers and bottoms need gradients).
"""

from __future__ import annotations

import difflib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..blob import Blob
from ..errors import BrewnetError, NetError, ShapeError, WeightsError
from ..layers.base import Layer
from ..layers.python_layer import PYTHON_TYPE, python_layer_refusal
from ..layers.registry import layer_class
from ..log import log
from ..proto import caffe_pb2
from ..proto.binaryio import read_net_binary, write_binary
from ..proto.positions import Node
from ..proto.textio import read_net
from ..proto.upgrade import upgrade_net
from .batching import WholeDatasetPasses
from .hdf5_weights import is_hdf5_path, load_hdf5_weights, save_hdf5_weights
from .lint import explain_foreign_params, net_warnings
from .locate import follow, locate_layer_error, source_nodes
from .splits import insert_splits
from .state import filter_net
from .weights import blob_to_proto, blobproto_to_array, copy_trained_layers

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _parse_net_args(args: tuple, phase: Any, weights: Any) -> tuple[int, str | None]:
    """Accept pycaffe's forms: Net(f, phase), Net(f, weights, phase) and keywords."""
    args = list(args)
    if len(args) == 2:  # legacy Net(file, pretrained, phase)
        weights, phase = args
        log.warning("DEPRECATION WARNING - deprecated use of Python interface: write "
                    f"Net(model, {phase}, weights='{weights}') instead of "
                    "Net(model, weights, phase)")
    elif len(args) == 1:
        if isinstance(args[0], str | os.PathLike):
            weights = args[0]
        else:
            phase = args[0]
    elif len(args) > 2:
        raise TypeError("Net(model, phase) or Net(model, weights, phase)")
    if phase is None:
        raise TypeError("Net needs a phase: brewnet.TRAIN or brewnet.TEST")
    if phase not in (TRAIN, TEST):
        raise ValueError(f"phase must be brewnet.TRAIN (0) or brewnet.TEST (1), not {phase!r}")
    return int(phase), (os.fspath(weights) if weights is not None else None)


class Net(WholeDatasetPasses):
    """A compiled net.

    ``Net(model, phase, level=0, stages=None, weights=None)`` or pycaffe's legacy
    ``Net(model, weights, phase)``; ``model`` is a prototxt path or a NetParameter. The
    solver passes the complete NetState as ``state`` instead of phase/level/stages.
    ``allow_python_layers=True`` lets ``type: "Python"`` layers import and run their module.

    Errors name the prototxt's ``file:line:col`` (``self.file``) of the layer or field at
    fault; ``warnings`` lists what is legal but suspicious (brewnet.net.lint).
    """

    # Net raises its first compile error; brewnet.net.checks.CheckedNet collects them all.
    collects_problems: bool = False

    def __init__(self, model: str | os.PathLike | caffe_pb2.NetParameter, *args: Any,
                 phase: int | None = None, level: int = 0, stages: Sequence[str] | None = None,
                 weights: str | os.PathLike | None = None,
                 state: caffe_pb2.NetState | None = None, source: str | None = None,
                 allow_python_layers: bool = False):
        # Opt-in for `type: "Python"` layers, which import and run the module the prototxt names.
        self.allow_python_layers = allow_python_layers
        # pycaffe's before_/after_ forward/backward callbacks, each called with a layer index.
        self._hooks: dict[str, list[Callable[[int], Any]]] = {
            "before_forward": [], "after_forward": [], "before_backward": [],
            "after_backward": []}
        if state is None:
            phase, weights = _parse_net_args(args, phase, weights)
        elif args:
            raise TypeError("pass either state= or phase arguments, not both")
        if isinstance(model, caffe_pb2.NetParameter):
            param = caffe_pb2.NetParameter()
            param.CopyFrom(model)
            upgrade_net(param, source or "<NetParameter>")
        else:
            source = source or os.fspath(model)
            param = read_net(model)
        self.source = source or "<NetParameter>"
        # The prototxt the layers came from, for errors that name file:line:col.
        self.file = source if source and os.path.isfile(source) else None
        nodes = source_nodes(param, self.file)
        if state is None:  # Caffe: the file's own state, with phase and level set, stages added
            state = caffe_pb2.NetState()
            state.CopyFrom(param.state)
            state.phase, state.level = phase, level
            state.stage.extend(stages or ())
        self.phase = state.phase
        self.state = state
        self._build(param, state, nodes)
        if weights is not None:
            self.copy_from(weights)

    # ------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------
    def _build(self, param: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
               nodes: list[Node | None]) -> None:
        self.name = param.name
        try:
            filtered = filter_net(param, state)
        except BrewnetError as e:
            for lp, node in zip(param.layer, nodes, strict=True):
                if lp.name == e.layer:
                    locate_layer_error(e, lp, node, self.file)
            raise
        self.force_backward = filtered.force_backward
        self.param_def = insert_splits(filtered)
        self.layers: list[Layer] = []
        self._layer_names: list[str] = []
        self._layer_nodes: list[Node | None] = []  # each layer's prototxt block
        self.blobs: OrderedDict[str, Blob] = OrderedDict()
        self.bottom_vecs: list[list[Blob]] = []
        self.top_vecs: list[list[Blob]] = []
        self._bottom_names: list[list[str]] = []
        self._top_names: list[list[str]] = []
        self._loss_weights: list[list[float]] = []  # per layer, per top
        self.inputs: list[str] = []
        self.learnable_params: list[Blob] = []
        self.params_lr: list[float] = []
        self.params_weight_decay: list[float] = []
        self._param_owner: dict[str, tuple[int, int]] = {}  # ParamSpec.name -> (layer, blob)
        self._param_lr_set: dict[str, bool] = {}  # whether the owner's spec set lr_mult
        self._param_decay_set: dict[str, bool] = {}
        self.problems: list[BrewnetError] = []  # filled instead of raising by collects_problems
        available: dict[str, None] = {}  # insertion-ordered set of unconsumed blobs
        names_seen: set[str] = set()
        broken: set[str] = set()  # tops of layers that failed: their consumers are skipped
        layers = list(zip(self.param_def.layer,
                          follow(param, nodes, state, self.param_def), strict=True))
        self._defined, self._compiled = param, layers  # for messages about missing blobs
        classes = []
        for lp, node in layers:  # every type is checked before any layer is set up
            try:
                classes.append(self._layer_class(lp))
            except BrewnetError as e:
                self._failed(locate_layer_error(e, lp, node, self.file))
                classes.append(None)
        for (lp, node), cls in zip(layers, classes, strict=True):
            if cls is None or any(name in broken for name in lp.bottom):
                broken.update(lp.top)
                continue
            known = len(self.blobs)  # blobs is insertion-ordered: later ones are this layer's
            try:
                if not lp.name:
                    raise NetError("a layer has no name; every layer needs a unique `name:`",
                                   layer_type=lp.type)
                if lp.name in names_seen:  # Caffe allows it (BVLC's autoencoder does it)
                    log.warning(f"layer name '{lp.name}' is used twice; net.params and weight "
                                "files address the later layer by that name")
                names_seen.add(lp.name)
                self._append_layer(lp, cls, available, node)
            except BrewnetError as e:
                explain_foreign_params(e, lp, cls.is_loss)
                self._failed(locate_layer_error(e, lp, node, self.file))
                broken.update(lp.top)
                for name in list(self.blobs)[known:]:
                    del self.blobs[name]
                    available.pop(name, None)
            except BaseException:
                self.close()  # stop the data threads of the layers already set up
                raise
        self.outputs: list[str] = sorted(available)  # std::set order, as Caffe
        try:
            self._plan_backward()
        except BrewnetError as e:
            i = self._layer_names.index(e.layer) if e.layer in self._layer_names else None
            if i is not None:
                locate_layer_error(e, self.layers[i].param, self._layer_nodes[i], self.file)
            self._failed(e)
        self.warnings = net_warnings(self)
        for warning in self.warnings:
            log.warning(str(warning))
        log.debug(f"Network initialization done ({len(self.layers)} layers).")

    def _failed(self, error: BrewnetError) -> None:
        """Raise ``error`` (stopping the layers set up so far), or record it and go on."""
        if not self.collects_problems:
            self.close()
            raise error
        self.problems.append(error)

    def _layer_class(self, lp: caffe_pb2.LayerParameter) -> type[Layer]:
        if lp.type == PYTHON_TYPE and not self.allow_python_layers:
            raise python_layer_refusal(lp)
        try:
            return layer_class(lp.type)
        except KeyError as e:
            raise NetError(e.args[0], layer=lp.name, layer_type=lp.type) from None

    def _append_layer(self, lp: caffe_pb2.LayerParameter, cls: type[Layer],
                      available: dict[str, None], node: Node | None = None) -> None:
        if not lp.HasField("phase"):
            lp.phase = self.phase  # Caffe's Init: layers inherit the net's phase
        layer = cls(lp, lp.phase)
        if len(lp.blobs):  # weights carried by the definition itself (Caffe's Layer ctor)
            layer.blobs = [self._blob_from_proto(lp, j, bp) for j, bp in enumerate(lp.blobs)]
        idx = len(self.layers)
        bottoms, tops = [], []
        for j, name in enumerate(lp.bottom):
            if name not in self.blobs:
                raise NetError(self._unknown_bottom_message(name, j), layer=lp.name,
                               layer_type=lp.type, blob=name)
            bottoms.append(self.blobs[name])
            available.pop(name, None)
        top_names = list(lp.top)
        if cls.is_loss and not top_names:
            top_names = ["(automatic)"]  # Caffe's AutoTopBlobs for loss layers
        for j, name in enumerate(top_names):
            if j < len(lp.bottom) and lp.bottom[j] == name:
                if not cls.can_run_in_place:
                    raise NetError(f"top '{name}' is computed in place (top == bottom) but "
                                   f"{lp.type} cannot run in place; give the top another name",
                                   layer=lp.name, layer_type=lp.type, blob=name)
                tops.append(self.blobs[name])
            elif name in self.blobs:
                raise NetError(f"top '{name}' is produced by more than one layer; rename "
                               "one of them (only top == bottom at the same index is in-place)",
                               layer=lp.name, layer_type=lp.type, blob=name)
            else:
                blob = Blob()
                tops.append(blob)
                if name != "(automatic)":
                    self.blobs[name] = blob
            if name != "(automatic)":
                available[name] = None
        self._check_counts(cls, lp, len(bottoms), len(tops))
        log.debug(f"Creating Layer {lp.name}")
        layer.setup(bottoms, tops)
        layer.reshape(bottoms, tops)
        # Loss weights: the explicit ones, else Caffe's LossLayer default of a single 1 (so a
        # loss layer with two tops must spell out both weights, as in Caffe).
        weights = list(lp.loss_weight) or ([1.0] if cls.is_loss else [0.0] * len(tops))
        if len(weights) != len(tops):
            hint = (" (a loss layer's default is one weight for its first top; write e.g. "
                    "loss_weight: 1 loss_weight: 0)" if not len(lp.loss_weight) else "")
            raise NetError(f"has {len(weights)} loss_weight values for {len(tops)} tops; give "
                           f"one per top or none{hint}", layer=lp.name, layer_type=lp.type)
        for blob, w in zip(tops, weights, strict=True):
            if w:
                blob.diff[...] = w
        if cls.type == "Input":
            self.inputs.extend(top_names)
        self.layers.append(layer)
        self._layer_names.append(lp.name)
        self._layer_nodes.append(node)
        self.bottom_vecs.append(bottoms)
        self.top_vecs.append(tops)
        self._bottom_names.append(list(lp.bottom))
        self._top_names.append(top_names)
        self._loss_weights.append(weights)
        self._append_params(idx, layer, lp)

    @staticmethod
    def _blob_from_proto(lp: caffe_pb2.LayerParameter, j: int, bp: caffe_pb2.BlobProto) -> Blob:
        try:
            values = blobproto_to_array(bp)
        except WeightsError as e:
            raise NetError(f"blobs[{j}]: {e}", layer=lp.name, layer_type=lp.type) from None
        blob = Blob(values.shape)
        blob.data[...] = blob.xp.asarray(values)
        return blob

    def _unknown_bottom_message(self, name: str, index: int) -> str:
        later = [(lp, node) for lp, node in self._compiled if name in lp.top]
        if later:
            lp, node = later[0]
            at = f" at line {node.line}" if node is not None else ""
            return (f"bottom '{name}' (index {index}) is produced later, by layer '{lp.name}'"
                    f"{at}; move that layer before this one")
        elsewhere = [lp.name for lp in self._defined.layer if name in lp.top]
        if elsewhere:
            phase = "TRAIN" if self.phase == TRAIN else "TEST"
            return (f"bottom '{name}' (index {index}) is produced only by layer "
                    f"'{elsewhere[0]}', which its include/exclude rules leave out of this "
                    f"{phase} net")
        close = difflib.get_close_matches(name, list(self.blobs), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"bottom '{name}' (index {index}) is not produced by any layer{hint}"

    @staticmethod
    def _check_counts(cls: type[Layer], lp: caffe_pb2.LayerParameter, nb: int, nt: int) -> None:
        def bad(what: str, n: int, rule: str) -> NetError:
            hint = ""
            if cls.is_loss and what == "bottom" and n < 2:
                hint = ("; a loss layer takes the predictions and the labels, e.g. "
                        'bottom: "ip2" bottom: "label"')
            return NetError(f"{lp.type} takes {rule} {what} blob(s), got {n}{hint}",
                            layer=lp.name, layer_type=lp.type)

        for what, n, exact, lo, hi in (
                ("bottom", nb, cls.exact_num_bottom, cls.min_bottom, cls.max_bottom),
                ("top", nt, cls.exact_num_top, cls.min_top, cls.max_top)):
            if exact is not None and n != exact:
                raise bad(what, n, f"exactly {exact}")
            if lo is not None and n < lo:
                raise bad(what, n, f"at least {lo}")
            if hi is not None and n > hi:
                raise bad(what, n, f"at most {hi}")

    def _append_params(self, idx: int, layer: Layer, lp: caffe_pb2.LayerParameter) -> None:
        if len(lp.param) > len(layer.blobs):
            raise NetError(f"has {len(lp.param)} `param` specs but {lp.type} has only "
                           f"{len(layer.blobs)} parameter blobs", layer=lp.name,
                           layer_type=lp.type)
        layer.param_propagate_down = []
        for j in range(len(layer.blobs)):
            spec = lp.param[j] if j < len(lp.param) else caffe_pb2.ParamSpec()
            layer.param_propagate_down.append(spec.lr_mult != 0)
            name = spec.name
            if not name or name not in self._param_owner:
                if name:
                    self._param_owner[name] = (idx, j)
                    self._param_lr_set[name] = spec.HasField("lr_mult")
                    self._param_decay_set[name] = spec.HasField("decay_mult")
                self.learnable_params.append(layer.blobs[j])
                self.params_lr.append(spec.lr_mult)
                self.params_weight_decay.append(spec.decay_mult)
                continue
            owner_layer, owner_j = self._param_owner[name]
            owner = self.layers[owner_layer].blobs[owner_j]
            mine = layer.blobs[j]
            strict = spec.share_mode == caffe_pb2.ParamSpec.STRICT
            if (strict and owner.shape != mine.shape) or owner.count != mine.count:
                raise ShapeError(f"shares parameter '{name}' with layer "
                                 f"'{self._layer_names[owner_layer]}' but the shapes differ: "
                                 f"{tuple(owner.shape)} there, {tuple(mine.shape)} here",
                                 layer=lp.name, layer_type=lp.type)
            owner_index = self.learnable_params.index(owner)
            # lr_mult and decay_mult: set on both sides they must agree; set only here, they
            # become the owner's (Caffe's AppendParam).
            for field, values, seen in (("lr_mult", self.params_lr, self._param_lr_set),
                                        ("decay_mult", self.params_weight_decay,
                                         self._param_decay_set)):
                if not spec.HasField(field):
                    continue
                mine_value = getattr(spec, field)
                if seen[name] and values[owner_index] != mine_value:
                    raise NetError(f"shared parameter '{name}' has {field} {mine_value:g} here "
                                   f"but {values[owner_index]:g} in its owner layer "
                                   f"'{self._layer_names[owner_layer]}'; make them equal",
                                   layer=lp.name, layer_type=lp.type)
                values[owner_index] = mine_value
                seen[name] = True
            if strict:
                layer.blobs[j] = owner
            else:  # PERMISSIVE: same values under this layer's own shape
                view = Blob(mine.shape, xp=owner.xp)
                view._data = owner.data.reshape(mine.data.shape)
                view._diff = owner.diff.reshape(mine.data.shape)
                layer.blobs[j] = view

    def _plan_backward(self) -> None:
        """Caffe's need_backward analysis: forward sweep (a blob needs a gradient if its
        producer needs backward), explicit propagate_down, reverse sweep (only layers that
        reach a loss run backward), then force_backward."""
        n = len(self.layers)
        blob_needs: dict[int, bool] = {}
        self.layer_need_backward = [False] * n
        self.bottom_need_backward: list[list[bool]] = []
        for i, layer in enumerate(self.layers):
            lp = layer.param
            if len(lp.propagate_down) not in (0, len(self.bottom_vecs[i])):
                raise NetError(f"propagate_down has {len(lp.propagate_down)} values for "
                               f"{len(self.bottom_vecs[i])} bottoms; give one per bottom",
                               layer=lp.name, layer_type=lp.type)
            need = False
            flags = []
            for j, b in enumerate(self.bottom_vecs[i]):
                blob_flag = blob_needs.get(id(b), False)
                need |= blob_flag
                flags.append(bool(lp.propagate_down[j]) if len(lp.propagate_down) else blob_flag)
            need |= any(layer.param_propagate_down)
            self.bottom_need_backward.append(flags)
            self.layer_need_backward[i] = need
            if need:
                for t in self.top_vecs[i]:
                    blob_needs[id(t)] = True
        under_loss: set[int] = set()
        skip_backprop: set[int] = set()
        for i in range(n - 1, -1, -1):
            contributes, skip = False, True
            for t, w in zip(self.top_vecs[i], self._loss_weights[i], strict=True):
                if w != 0 or id(t) in under_loss:
                    contributes = True
                if id(t) not in skip_backprop:
                    skip = False
            if self.layer_need_backward[i] and skip:
                self.layer_need_backward[i] = False
                self.bottom_need_backward[i] = [False] * len(self.bottom_vecs[i])
            if not contributes:
                self.layer_need_backward[i] = False
            for j, b in enumerate(self.bottom_vecs[i]):
                if contributes:
                    under_loss.add(id(b))
                else:
                    self.bottom_need_backward[i][j] = False
                if not self.bottom_need_backward[i][j]:
                    skip_backprop.add(id(b))
        if self.force_backward:
            for i, layer in enumerate(self.layers):
                self.layer_need_backward[i] = True
                self.bottom_need_backward[i] = [
                    flag or layer.allow_force_backward(j)
                    for j, flag in enumerate(self.bottom_need_backward[i])]
                layer.param_propagate_down = [True] * len(layer.blobs)

    # ------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------
    def _forward(self, start: int, end: int) -> float:
        """Run layers ``start..end`` (inclusive); return the weighted loss they produce."""
        loss = np.float32(0)  # float32 like Caffe's Dtype, so printed losses agree
        before, after = self._hooks["before_forward"], self._hooks["after_forward"]
        for i in range(start, end + 1):
            for fn in before:
                fn(i)
            layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
            layer.reshape(bottom, top)
            layer.forward(bottom, top)
            for t, w in zip(top, self._loss_weights[i], strict=True):
                if w:
                    t.diff[...] = w  # a reshape may have reallocated (zeroed) the diff
                    loss += np.float32(w) * np.float32(t.data.sum())
            for fn in after:
                fn(i)
        return float(loss)

    def _backward(self, start: int, end: int) -> None:
        """Run backward for layers ``start`` down to ``end`` (inclusive)."""
        before, after = self._hooks["before_backward"], self._hooks["after_backward"]
        for i in range(start, end - 1, -1):
            for fn in before:  # called for every layer in the range, as Caffe's
                fn(i)
            if self.layer_need_backward[i]:
                self.layers[i].backward(self.top_vecs[i], self.bottom_need_backward[i],
                                        self.bottom_vecs[i])
            for fn in after:
                fn(i)

    def forward_loss(self) -> float:
        """A full forward pass; returns the loss."""
        return self._forward(0, len(self.layers) - 1)

    def forward_backward(self) -> float:
        loss = self._forward(0, len(self.layers) - 1)
        self._backward(len(self.layers) - 1, 0)
        return loss

    def _layer_index(self, name: str) -> int:
        try:
            return self._layer_names.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self._layer_names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise NetError(f"no layer named '{name}' in net '{self.name}'{hint}") from None

    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """pycaffe's forward: optional input arrays by name, a layer range by name; returns
        the outputs (or the tops of ``end``) plus ``blobs`` as {name: data array}."""
        blobs = self._known_blobs(blobs)
        start_i = self._layer_index(start) if start is not None else 0
        if end is not None:
            end_i = self._layer_index(end)
            outputs = dict.fromkeys([*self._top_names[end_i], *blobs])
        else:
            end_i = len(self.layers) - 1
            outputs = dict.fromkeys([*self.outputs, *blobs])
        if kwargs:
            self._set_arrays(kwargs, self.inputs, "data", "inputs")
        self._forward(start_i, end_i)
        return {name: self.blobs[name].data for name in outputs if name in self.blobs}

    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """pycaffe's backward: optional output diffs by name, a layer range by name (``start``
        is the later layer); returns the input diffs (or of the bottoms of ``end``)."""
        diffs = self._known_blobs(diffs)
        start_i = self._layer_index(start) if start is not None else len(self.layers) - 1
        if end is not None:
            end_i = self._layer_index(end)
            outputs = dict.fromkeys([*self._bottom_names[end_i], *diffs])
        else:
            end_i = 0
            outputs = dict.fromkeys([*self.inputs, *diffs])
        if kwargs:
            self._set_arrays(kwargs, self.outputs, "diff", "outputs")
        self._backward(start_i, end_i)
        return {name: self.blobs[name].diff for name in outputs if name in self.blobs}

    def _known_blobs(self, names: Sequence[str] | None) -> list[str]:
        names = list(names or [])
        for name in names:
            if name not in self.blobs:
                close = difflib.get_close_matches(name, list(self.blobs), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise NetError(f"no blob named '{name}' in net '{self.name}'{hint}", blob=name)
        return names

    def _set_arrays(self, arrays: dict[str, Any], allowed: list[str], field: str,
                    what: str) -> None:
        if set(arrays) != set(allowed):
            raise NetError(f"the keyword arrays {sorted(arrays)} must name exactly the net's "
                           f"{what} {sorted(allowed)}")
        for name, value in arrays.items():
            blob = self.blobs[name]
            value = np.asarray(value) if blob.xp is np else blob.xp.asarray(value)
            if value.shape[:1] != tuple(blob.data.shape[:1]):
                raise ShapeError(f"array for '{name}' has batch size {value.shape[:1]} but "
                                 f"the blob has shape {tuple(blob.data.shape)}; reshape the "
                                 "blob first (net.blobs[name].reshape(...); net.reshape())",
                                 blob=name)
            getattr(blob, field)[...] = value

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """pycaffe's: give the net's first layer, which must be MemoryData, the arrays it
        serves batch by batch."""
        first = self.layers[0] if self.layers else None
        if first is None or first.type != "MemoryData":
            raise NetError("set_input_arrays needs a MemoryData layer as the net's first "
                           f"layer; net '{self.name}' starts with "
                           f"{first.type if first else 'no layer'}")
        first.reset(data, labels)

    def reshape(self) -> None:
        """Propagate new input shapes through every layer (after blob.reshape on an input)."""
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs,
                                      strict=True):
            layer.reshape(bottom, top)

    def clear_param_diffs(self) -> None:
        for p in self.learnable_params:
            p.diff[...] = 0

    def update(self) -> None:
        """data -= diff for every learnable parameter (Caffe's Net::Update)."""
        for p in self.learnable_params:
            p.data[...] -= p.diff

    # ------------------------------------------------------------------------------------
    # weights
    # ------------------------------------------------------------------------------------
    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as a NetParameter with its parameter blobs (a .caffemodel's content)."""
        out = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            lp = out.layer.add()
            lp.CopyFrom(layer.param)
            del lp.blobs[:]
            for blob in layer.blobs:
                lp.blobs.append(blob_to_proto(blob, write_diff))
        return out

    def copy_trained_layers_from(self, param: caffe_pb2.NetParameter, source: str = "") -> None:
        """Copy weights layer by layer, matching by name (Caffe's CopyTrainedLayersFrom)."""
        if len(param.layers):
            upgrade_net(param, source or "weights")
        copy_trained_layers(self, param, source)

    def copy_from(self, path: str | os.PathLike) -> None:
        """Load weights from a .caffemodel (binary NetParameter) or, by its ``.h5`` suffix as
        Caffe decides, a .caffemodel.h5."""
        path = os.fspath(path)
        if not Path(path).is_file():
            raise BrewnetError(f"{path}: weights file not found")
        if is_hdf5_path(path):
            load_hdf5_weights(self, path)
        else:
            self.copy_trained_layers_from(read_net_binary(path), path)

    def save_hdf5(self, path: str | os.PathLike) -> None:
        """Write the weights as a .caffemodel.h5 (pycaffe's save_hdf5; needs h5py)."""
        save_hdf5_weights(self, path)

    def load_hdf5(self, path: str | os.PathLike) -> None:
        """Load weights from a .caffemodel.h5 (pycaffe's load_hdf5; needs h5py)."""
        load_hdf5_weights(self, path)

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights as a binary .caffemodel, atomically."""
        write_binary(path, self.to_proto())

    def share_with(self, other: Net) -> None:
        """Use ``other``'s parameter values in the layers both nets name alike (Caffe's
        ShareTrainedLayersWith: data is shared, gradients are not)."""
        mine = dict(zip(self._layer_names, self.layers, strict=True))
        for name, src in zip(other._layer_names, other.layers, strict=True):
            dst = mine.get(name)
            if dst is None:
                continue
            if len(dst.blobs) != len(src.blobs):
                raise NetError(f"cannot share weights: {len(src.blobs)} blobs in the source "
                               f"layer, {len(dst.blobs)} here", layer=name, layer_type=dst.type)
            for j, (d, s) in enumerate(zip(dst.blobs, src.blobs, strict=True)):
                if d.shape != s.shape:
                    raise ShapeError(f"cannot share parameter {j}: shape {tuple(s.shape)} in "
                                     f"the source net, {tuple(d.shape)} here", layer=name,
                                     layer_type=dst.type)
                d.share_data(s)

    def seek_data(self, batch: int) -> None:
        """Make every data layer's next forward deliver its batch number ``batch`` (counted
        from the start of its source), to resume exactly."""
        for layer in self.layers:
            layer.seek_batch(batch)

    def close(self) -> None:
        """Stop background threads (data prefetch)."""
        for layer in self.layers:
            layer.close()

    # ------------------------------------------------------------------------------------
    # pycaffe's views
    # ------------------------------------------------------------------------------------
    @property
    def params(self) -> OrderedDict[str, list[Blob]]:
        """Layer name → its parameter blobs, for layers that have any."""
        return OrderedDict((n, layer.blobs) for n, layer in zip(self._layer_names, self.layers,
                                                                  strict=True) if layer.blobs)

    @property
    def layer_dict(self) -> OrderedDict[str, Layer]:
        return OrderedDict(zip(self._layer_names, self.layers, strict=True))

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict(zip(self._layer_names, self._top_names, strict=True))

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict(zip(self._layer_names, self._bottom_names, strict=True))

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        weights: OrderedDict[str, float] = OrderedDict((n, 0.0) for n in self.blobs)
        for names, ws in zip(self._top_names, self._loss_weights, strict=True):
            for name, w in zip(names, ws, strict=True):
                if name in weights:  # a later in-place top overwrites, as Caffe's blob ids
                    weights[name] = w
        return weights

    # Raw accessors by index, as pycaffe's bindings: blob indices count every blob of
    # ``blobs`` (split tops included); a loss layer's unnamed automatic top has none.
    @property
    def _blob_names(self) -> list[str]:
        return list(self.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self.blobs.values())

    def _blob_ids(self, blobs: list[Blob]) -> list[int]:
        index = {id(b): k for k, b in enumerate(self.blobs.values())}
        return [index[id(b)] for b in blobs if id(b) in index]

    @property
    def _inputs(self) -> list[int]:
        """Blob indices of ``inputs``."""
        return self._blob_ids([self.blobs[n] for n in self.inputs])

    @property
    def _outputs(self) -> list[int]:
        """Blob indices of ``outputs``."""
        return self._blob_ids([self.blobs[n] for n in self.outputs])

    def _bottom_ids(self, i: int) -> list[int]:
        """Blob indices of layer ``i``'s bottoms."""
        return self._blob_ids(self.bottom_vecs[i])

    def _top_ids(self, i: int) -> list[int]:
        """Blob indices of layer ``i``'s tops."""
        return self._blob_ids(self.top_vecs[i])

    # ------------------------------------------------------------------------------------
    # pycaffe's callbacks
    # ------------------------------------------------------------------------------------
    def before_forward(self, fn: Callable[[int], Any]) -> None:
        """Call ``fn(i)`` just before layer ``i`` runs forward."""
        self._hooks["before_forward"].append(fn)

    def after_forward(self, fn: Callable[[int], Any]) -> None:
        """Call ``fn(i)`` just after layer ``i`` ran forward."""
        self._hooks["after_forward"].append(fn)

    def before_backward(self, fn: Callable[[int], Any]) -> None:
        """Call ``fn(i)`` before layer ``i``'s backward step (even when it needs none)."""
        self._hooks["before_backward"].append(fn)

    def after_backward(self, fn: Callable[[int], Any]) -> None:
        """Call ``fn(i)`` after layer ``i``'s backward step (even when it needed none)."""
        self._hooks["after_backward"].append(fn)

    def __repr__(self) -> str:
        return f"<brewnet.Net '{self.name}' ({len(self.layers)} layers, phase " \
               f"{'TRAIN' if self.phase == TRAIN else 'TEST'})>"
