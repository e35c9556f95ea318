"""The compiler: a NetParameter and a NetState in, a :class:`~brewnet.net.plan.Plan` out, by
Caffe's ``Net::Init`` rules — filter by NetState → insert Split layers → for each layer:
create it from the registry, wire bottoms and tops by name, let it set itself up (shapes,
loss weights), enter its parameters in the table → plan backward.

Errors name the prototxt's ``file:line:col`` of the layer or field at fault, from the block
each layer came from (``nodes``, carried through filtering and split insertion).
"""

from __future__ import annotations

import difflib

from ..blob import AllocationBudget, Blob
from ..errors import BrewnetError, NetError, WeightsError
from ..layers.base import Layer
from ..layers.python_layer import PYTHON_TYPE, python_layer_refusal, python_layers_allowed
from ..layers.registry import layer_class
from ..log import log
from ..proto import caffe_pb2
from ..proto.blobproto import blobproto_to_array
from ..proto.positions import Node
from .backward import plan_backward
from .fusion import fused_chains
from .joins import join_concats
from .lint import explain_foreign_params, net_warnings
from .locate import locate_layer_error
from .memory import OVERRIDES, memory_error, net_memory
from .params import ParamTable
from .plan import Plan, Step
from .splits import insert_splits_traced
from .state import filter_net, included_layers

AUTOMATIC = "(automatic)"  # Caffe's name for a loss layer's unnamed top


def compile_net(param: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
                nodes: list[Node | None], *, file: str | None = None,
                allow_python_layers: bool = False, collect_problems: bool = False,
                log_warnings: bool = True, memory_limit: int | None = None,
                history_slots: int = 0, fuse: bool = False) -> Plan:
    """Compile ``param`` (already upgraded; ``nodes``: each layer's prototxt block in
    ``file``) for ``state``. The first error is raised, with the layers set up so far
    stopped; with ``collect_problems`` every error is kept in ``plan.problems`` instead, the
    failed layers and everything downstream of them left out. ``log_warnings=False`` keeps
    the net's warnings (``plan.warnings``, a reused layer name) out of the log, for readers
    that only want shapes, such as draw. A net needing more than ``memory_limit`` bytes
    (with ``history_slots`` solver arrays per learnable parameter) is an error, found
    before more than the limit is allocated (net/memory.py). ``fuse`` finds the chains of
    steps a forward may run as one (``plan.fused``, net/fusion.py) and the Concat bottoms
    that may live in their top (net/joins.py)."""
    plan = _Compiler(param, state, nodes, file, allow_python_layers, collect_problems,
                     log_warnings, memory_limit, history_slots).run()
    if fuse:
        plan.fused = fused_chains(plan)
        join_concats(plan)
    return plan


class _Compiler:
    def __init__(self, param: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
                 nodes: list[Node | None], file: str | None, allow_python_layers: bool,
                 collect_problems: bool, log_warnings: bool, memory_limit: int | None,
                 history_slots: int):
        self.defined, self.state, self.nodes, self.file = param, state, nodes, file
        self.allow_python_layers = allow_python_layers
        self.collect_problems = collect_problems
        self.log_warnings = log_warnings
        self.memory_limit, self.history_slots = memory_limit, history_slots
        self.plan: Plan | None = None
        self.compiled: list[tuple[caffe_pb2.LayerParameter, Node | None]] = []
        self.ids: dict[str, int] = {}  # blob name -> its index in plan.blobs
        self.writers: dict[int, Layer] = {}  # blob index -> the layer that wrote it last

    def run(self) -> Plan:
        if self.memory_limit is None:
            return self._compile()
        with AllocationBudget(self.memory_limit).active() as budget:
            plan = self._compile()
        use = net_memory(plan, self.history_slots)
        if budget.exceeded or use.total > self.memory_limit:
            self._failed(memory_error(plan, use, self.memory_limit))
        return plan

    def _compile(self) -> Plan:
        param, state = self.defined, self.state
        try:
            kept = included_layers(param, state)
        except BrewnetError as e:
            for lp, node in zip(param.layer, self.nodes, strict=True):
                if lp.name == e.layer:
                    locate_layer_error(e, lp, node, self.file)
            raise
        param_def, traced = insert_splits_traced(filter_net(param, state, kept))
        plan = self.plan = Plan(param.name, state.phase, self.file, param_def)
        if not len(param.layer):  # Caffe would train it: two iterations of nothing
            self._failed(NetError("the net defines no layers; is this the right (or a "
                                  "complete) prototxt?", file=self.file))
        self.table = ParamTable(plan.slots, plan.learnable)
        # Each compiled layer's index in ``param`` (None for an added Split), and its block.
        self.origins = [kept[k] if k is not None else None for k in traced]
        self.compiled = [(lp, self.nodes[k] if k is not None else None)
                         for lp, k in zip(param_def.layer, self.origins, strict=True)]
        available: dict[str, None] = {}  # insertion-ordered set of unconsumed blobs
        names_seen: set[str] = set()
        broken: set[str] = set()  # tops of layers that failed: their consumers are skipped
        classes = []
        for lp, node in self.compiled:  # every type is checked before any layer is set up
            try:
                classes.append(self._layer_class(lp))
            except BrewnetError as e:
                self._failed(locate_layer_error(e, lp, node, self.file))
                classes.append(None)
        for (lp, node), cls, origin in zip(self.compiled, classes, self.origins, strict=True):
            if cls is None or any(name in broken for name in lp.bottom):
                broken.update(lp.top)
                continue
            known = len(plan.blobs)  # blobs is insertion-ordered: later ones are this layer's
            try:
                if not lp.name:
                    raise NetError("a layer has no name; every layer needs a unique `name:`",
                                   layer_type=lp.type)
                # Caffe allows a reused name (BVLC's autoencoder does it).
                if lp.name in names_seen and self.log_warnings:
                    log.warning(f"layer name '{lp.name}' is used twice; net.params and weight "
                                "files address the later layer by that name")
                names_seen.add(lp.name)
                self._append(lp, cls, available, node, origin)
            except BrewnetError as e:
                explain_foreign_params(e, lp)
                self._failed(locate_layer_error(e, lp, node, self.file))
                broken.update(lp.top)
                for name in list(plan.blobs)[known:]:
                    del plan.blobs[name], self.ids[name]
                    available.pop(name, None)
            except BaseException:
                plan.close()  # stop the data threads of the layers already set up
                raise
        plan.outputs = sorted(available)  # std::set order, as Caffe
        try:
            plan_backward(plan.steps, param_def.force_backward)
        except BrewnetError as e:
            for step in plan.steps:
                if step.name == e.layer:
                    locate_layer_error(e, step.layer.param, step.origin, self.file)
                    break
            self._failed(e)
        plan.warnings = net_warnings(plan)
        for warning in plan.warnings if self.log_warnings else ():
            log.warning(str(warning))
        log.debug(f"Network initialization done ({len(plan.steps)} layers).")
        return plan

    def _failed(self, error: BrewnetError) -> None:
        """Raise ``error`` (stopping the layers set up so far), or record it and go on."""
        if not self.collect_problems:
            self.plan.close()
            raise error
        self.plan.problems.append(error)

    def _layer_class(self, lp: caffe_pb2.LayerParameter) -> type[Layer]:
        if lp.type == PYTHON_TYPE and not (self.allow_python_layers
                                           or python_layers_allowed()):
            raise python_layer_refusal(lp)
        try:
            return layer_class(lp.type)
        except KeyError as e:
            raise NetError(e.args[0], layer=lp.name, layer_type=lp.type) from None

    def _append(self, lp: caffe_pb2.LayerParameter, cls: type[Layer],
                available: dict[str, None], node: Node | None, origin: int | None) -> None:
        """Create the layer, wire it to the blobs by name, set it up, enter its parameters."""
        plan = self.plan
        if not lp.HasField("phase"):
            lp.phase = plan.phase  # Caffe's Init: layers inherit the net's phase
        layer = cls(lp, lp.phase)
        if len(lp.blobs):  # weights carried by the definition itself (Caffe's Layer ctor)
            layer.blobs = [_blob_from_proto(lp, j, bp) for j, bp in enumerate(lp.blobs)]
        ids = self.ids
        bottoms = []
        for j, name in enumerate(lp.bottom):
            if name not in plan.blobs:
                raise NetError(self._unknown_bottom_message(name, j), layer=lp.name,
                               layer_type=lp.type, blob=name, field="bottom")
            bottoms.append(plan.blobs[name])
            available.pop(name, None)
        top_names = list(lp.top)
        if cls.is_loss and not top_names:
            top_names = [AUTOMATIC]  # Caffe's AutoTopBlobs for loss layers
        tops, top_ids = [], []
        for j, name in enumerate(top_names):
            if j < len(lp.bottom) and lp.bottom[j] == name:
                if not cls.can_run_in_place:
                    raise NetError(f"top '{name}' is computed in place (top == bottom) but "
                                   f"{lp.type} cannot run in place; give the top another name",
                                   layer=lp.name, layer_type=lp.type, blob=name, field="top")
                tops.append(plan.blobs[name])
                top_ids.append(ids[name])
            elif name in plan.blobs:
                raise NetError(f"top '{name}' is produced by more than one layer; rename "
                               "one of them (only top == bottom at the same index is in-place)",
                               layer=lp.name, layer_type=lp.type, blob=name, field="top")
            else:
                blob = Blob()
                tops.append(blob)
                top_ids.append(None)
                if name != AUTOMATIC:
                    top_ids[-1] = ids[name] = len(plan.blobs)
                    plan.blobs[name] = blob
            if name != AUTOMATIC:
                available[name] = None
        log.debug(f"Creating Layer {lp.name}")
        try:
            layer.set_up(bottoms, tops)
        except MemoryError as e:  # a scratch buffer the estimate does not count
            raise NetError(f"out of memory setting the layer up ({e}); reduce the batch size "
                           f"or the layer's sizes, or override with {OVERRIDES}",
                           layer=lp.name, layer_type=lp.type) from None
        self.table.append(len(plan.steps), layer)
        if tops and bottoms and tops[0] is bottoms[0]:
            layer.follows(self.writers[top_ids[0]])
        self.writers.update((i, layer) for i in top_ids if i is not None)
        if cls.type == "Input":
            plan.inputs.extend(top_names)
        plan.steps.append(Step(layer, list(lp.bottom), top_names,
                               [ids[name] for name in lp.bottom], top_ids, bottoms, tops, node,
                               origin))

    def _unknown_bottom_message(self, name: str, index: int) -> str:
        later = [(lp, node) for lp, node in self.compiled if name in lp.top]
        if later:
            lp, node = later[0]
            at = f" at line {node.line}" if node is not None else ""
            return (f"bottom '{name}' (index {index}) is produced later, by layer '{lp.name}'"
                    f"{at}; move that layer before this one")
        elsewhere = [lp.name for lp in self.defined.layer if name in lp.top]
        if elsewhere:
            phase = "TRAIN" if self.plan.phase == caffe_pb2.TRAIN else "TEST"
            return (f"bottom '{name}' (index {index}) is produced only by layer "
                    f"'{elsewhere[0]}', which its include/exclude rules leave out of this "
                    f"{phase} net")
        close = difflib.get_close_matches(name, list(self.plan.blobs), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"bottom '{name}' (index {index}) is not produced by any layer{hint}"


def _blob_from_proto(lp: caffe_pb2.LayerParameter, j: int, bp: caffe_pb2.BlobProto) -> Blob:
    try:
        values = blobproto_to_array(bp)
    except WeightsError as e:
        raise NetError(f"blobs[{j}]: {e}", layer=lp.name, layer_type=lp.type,
                       field="blobs") from None
    blob = Blob(values.shape)
    blob.data[...] = blob.xp.asarray(values)
    return blob

