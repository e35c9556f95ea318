"""A compiled net at run time, with pycaffe's Net API: ``Net`` reads a prototxt (or takes a
NetParameter), has brewnet.net.compiler turn it into a plan, and executes the plan — forward
and backward over its steps, pycaffe's callbacks around each layer.

The plan's parts live beside it: views.py derives pycaffe's names and lists from the plan,
weight_files.py reads and writes weights, batching.py runs whole datasets in batches.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import cores
from ..errors import NetError, ShapeError, pycaffe_kind
from ..log import log
from ..proto import caffe_pb2
from ..proto.positions import Node, read_positions
from ..proto.textio import read_net_located
from ..proto.upgrade import upgrade_net
from .batching import WholeDatasetPasses
from .compiler import compile_net
from .fusion import fusion_wanted
from .locate import source_nodes
from .memory import memory_limit
from .state import net_state
from .views import PlanViews
from .weight_files import WeightFiles

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


class Net(PlanViews, WeightFiles, WholeDatasetPasses):
    """A compiled net.

    ``Net(model, phase, level=0, stages=None, weights=None)`` or pycaffe's legacy
    ``Net(model, weights, phase)``; ``model`` is a prototxt path or a NetParameter. The
    solver passes the complete NetState as ``state`` instead of phase/level/stages, and for
    a NetParameter it read from the file ``source``, the file's field tree as ``layout`` (so
    the file is not read again to locate errors).
    ``allow_python_layers=True`` lets ``type: "Python"`` layers import and run their module.
    A net needing more memory than is available is refused before it is allocated, unless
    ``ignore_memory_limit=True`` (or BREWNET_IGNORE_MEMORY_LIMIT=1); a solver passes the
    arrays it keeps per learnable parameter as ``history_slots``, counted too.
    Forward runs a convolution and the fixed BatchNorm/Scale/ReLU in place after it as one
    step where nothing can tell, and in training a BatchNorm with batch statistics and its
    Scale/ReLU as one forward and one backward step (brewnet.net.fusion); ``fuse=False`` (or
    BREWNET_FUSE=0) runs every layer by itself.

    Errors name the prototxt's ``file:line:col`` (``self.file``) of the layer or field at
    fault; ``warnings`` lists what is legal but suspicious (brewnet.net.lint).
    """

    # Net raises its first compile error; brewnet.net.checks.CheckedNet collects them all.
    collects_problems: bool = False

    def __init__(self, model: str | os.PathLike | caffe_pb2.NetParameter, *args: Any,
                 phase: int | None = None, level: int = 0, stages: Sequence[str] | None = None,
                 weights: str | os.PathLike | None = None,
                 state: caffe_pb2.NetState | None = None, source: str | None = None,
                 layout: Node | None = None, allow_python_layers: bool = False,
                 ignore_memory_limit: bool = False, history_slots: int = 0,
                 fuse: bool | None = None):
        # Opt-in for `type: "Python"` layers, which import and run the module the prototxt names.
        self.allow_python_layers = allow_python_layers
        # pycaffe's before_/after_ forward/backward callbacks, each called with a layer index.
        self._hooks: dict[str, list[Callable[[int], Any]]] = {
            "before_forward": [], "after_forward": [], "before_backward": [],
            "after_backward": []}
        # Heads of the fused chains whose last forward ran fused and that a backward must
        # replay first (brewnet.net.fusion).
        self._replays_due: set[int] = set()
        # Heads of the chains whose backward folds, whose last forward ran fused and whose
        # steps have not run one by one since: a backward over the whole chain runs it as
        # one step (brewnet.net.fusion).
        self._backward_folds: set[int] = set()
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
            param, layout = read_net_located(model)
        self.source = source or "<NetParameter>"
        # The prototxt the layers came from, for errors that name file:line:col.
        self.file = source if source and os.path.isfile(source) else None
        if layout is None and self.file:  # a NetParameter read from a file by the caller
            layout = read_positions(self.file)
        nodes = source_nodes(param, layout)
        if state is None:
            state = net_state(param, phase, level, stages or ())
        self.phase = state.phase
        self.state = state
        self.name = param.name
        self.plan = compile_net(param, state, nodes, file=self.file,
                                allow_python_layers=allow_python_layers,
                                collect_problems=self.collects_problems,
                                memory_limit=memory_limit(ignore_memory_limit),
                                history_slots=history_slots, fuse=fusion_wanted(fuse))
        if weights is not None:
            self.copy_from(weights)

    # ------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------
    def _forward(self, start: int, end: int) -> float:
        """``_forward_steps``, the batch split over the cores (brewnet.cores)."""
        with cores.sharing(self._batch()):
            return self._forward_steps(start, end)

    def _backward(self, start: int, end: int) -> None:
        """``_backward_steps``, the batch split over the cores (brewnet.cores)."""
        with cores.sharing(self._batch()):
            self._backward_steps(start, end)

    def _batch(self) -> int:
        """The batch size as the first layer's first top has it (1 without one)."""
        steps = self.plan.steps
        if not steps or not steps[0].tops or not steps[0].tops[0].shape:
            return 1
        return int(steps[0].tops[0].shape[0])

    def _forward_steps(self, start: int, end: int) -> float:
        """Run layers ``start..end`` (inclusive); return the weighted loss they produce. A
        fused chain (net/fusion.py) wholly in the range runs as one step, unless callbacks
        watch the layers one by one."""
        loss = np.float32(0)  # float32 like Caffe's Dtype, so printed losses agree
        before, after = self._hooks["before_forward"], self._hooks["after_forward"]
        steps = self.plan.steps
        fused = {} if before or after else self.plan.fused
        # A forward starting inside a chain runs the rest of it one by one.
        self._backward_folds -= {head for head in self._backward_folds
                                 if head < start <= self.plan.fused[head].last}
        i = start
        while i <= end:
            chain = fused.get(i)
            if chain is not None and chain.last <= end:
                chain.run(steps)  # no loss: a chain's steps carry no loss weight
                if chain.replay:
                    self._replays_due.add(i)
                if chain.folds_backward:
                    self._backward_folds.add(i)
                i = chain.last + 1
                continue
            self._replays_due.discard(i)
            self._backward_folds.discard(i)
            for fn in before:
                fn(i)
            step = steps[i]
            loss += step.layer.run_forward(step.bottoms, step.tops)
            for fn in after:
                fn(i)
            i += 1
        return float(loss)

    def _backward_steps(self, start: int, end: int) -> None:
        """Run backward for layers ``start`` down to ``end`` (inclusive), after replaying
        the fused chains in the range that the last forward ran fused (net/fusion.py). A
        chain with a fused backward wholly in the range runs as one step, unless callbacks
        watch the layers one by one."""
        before, after = self._hooks["before_backward"], self._hooks["after_backward"]
        steps = self.plan.steps
        for head in sorted(self._replays_due):
            chain = self.plan.fused[head]
            if head <= start and chain.last >= end:
                chain.replay_steps(steps)
                self._replays_due.discard(head)
        folds = {} if before or after else {
            self.plan.fused[head].last: self.plan.fused[head] for head in self._backward_folds}
        i = start
        while i >= end:
            chain = folds.get(i)
            if chain is not None and chain.head >= end:
                chain.run_backward(steps)
                i = chain.head - 1
                continue
            for fn in before:  # called for every layer in the range, as Caffe's
                fn(i)
            step = steps[i]
            if step.need_backward:
                step.layer.backward(step.tops, step.bottom_need_backward, step.bottoms)
            for fn in after:
                fn(i)
            i -= 1

    def forward_loss(self) -> float:
        """A full forward pass; returns the loss."""
        return self._forward(0, len(self.plan.steps) - 1)

    def forward_backward(self) -> float:
        loss = self._forward(0, len(self.plan.steps) - 1)
        self._backward(len(self.plan.steps) - 1, 0)
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
            outputs = dict.fromkeys([*self.plan.steps[end_i].top_names, *blobs])
        else:
            end_i = len(self.plan.steps) - 1
            outputs = dict.fromkeys([*self.outputs, *blobs])
        if kwargs:
            self._set_arrays(kwargs, self.inputs, "data", "inputs")
        for step in self.plan.steps[:start_i]:
            step.layer.passed_over(step.bottoms, step.tops)
        self._forward(start_i, end_i)
        return {name: self.blobs[name].data for name in outputs if name in self.blobs}

    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """pycaffe's backward: optional output diffs by name, a layer range by name (``start``
        is the later layer); returns the input diffs (or of the bottoms of ``end``)."""
        diffs = self._known_blobs(diffs)
        start_i = self._layer_index(start) if start is not None else len(self.plan.steps) - 1
        if end is not None:
            end_i = self._layer_index(end)
            outputs = dict.fromkeys([*self.plan.steps[end_i].bottom_names, *diffs])
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
        # pycaffe copies with ``blob.data[...] = array``, where numpy raises ValueError.
        misfit = pycaffe_kind(ShapeError, ValueError)
        for name, value in arrays.items():
            blob = self.blobs[name]
            target = getattr(blob, field)
            value = value if hasattr(value, "dtype") else np.asarray(value)
            if value.dtype.kind not in "biuf":  # bool, int, unsigned, float
                raise pycaffe_kind(NetError, ValueError)(
                    f"array for '{name}' has dtype {value.dtype} and shape "
                    f"{tuple(value.shape)}; the blob holds float32 numbers of shape "
                    f"{tuple(target.shape)}: give a numeric array (np.asarray(x, np.float32))",
                    blob=name)
            value = np.asarray(value) if blob.xp is np else blob.xp.asarray(value)
            if value.shape[:1] != tuple(target.shape[:1]):
                raise misfit(f"array for '{name}' has batch size {value.shape[:1]} but "
                             f"the blob has shape {tuple(blob.data.shape)}; reshape the "
                             "blob first (net.blobs[name].reshape(...); net.reshape())",
                             blob=name)
            try:
                target[...] = value
            except ValueError:  # numpy could not broadcast the array to the blob's shape
                raise misfit(f"array for '{name}' has shape {tuple(value.shape)} but the blob "
                             f"has shape {tuple(target.shape)}; give an array of the blob's "
                             "shape, or reshape the blob first (net.blobs[name].reshape(...); "
                             "net.reshape())", blob=name) from None

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """pycaffe's: give the net's first layer, which must be MemoryData, the arrays it
        serves batch by batch."""
        first = self.layers[0] if self.layers else None
        if first is None or first.type != "MemoryData":
            raise pycaffe_kind(NetError, RuntimeError)(  # as pycaffe's (_caffe.cpp)
                "set_input_arrays needs a MemoryData layer as the net's first layer; net "
                f"'{self.name}' starts with {first.type if first else 'no layer'}")
        first.reset(data, labels)

    def reshape(self) -> None:
        """Propagate new input shapes through every layer (after blob.reshape on an input)."""
        for step in self.plan.steps:
            step.layer.reshape(step.bottoms, step.tops)

    def clear_param_diffs(self) -> None:
        for p in self.learnable_params:
            p.diff[...] = 0

    def update(self) -> None:
        """data -= diff for every learnable parameter (Caffe's Net::Update)."""
        for p in self.learnable_params:
            p.data[...] -= p.diff

    def seek_data(self, batch: int) -> None:
        """Make every data layer's next forward deliver its batch number ``batch`` (counted
        from the start of its source), to resume exactly."""
        for layer in self.layers:
            layer.seek_batch(batch)

    def close(self) -> None:
        """Stop background threads (data prefetch)."""
        self.plan.close()

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

    @contextmanager
    def hooked(self, **hooks: Callable[[int], Any]) -> Iterator[None]:
        """Add callbacks by the names above (``after_forward=fn``, ...) for the ``with`` block
        only: how debug output, timing and divergence tracing watch the layers run."""
        unknown = set(hooks) - set(self._hooks)
        if unknown:
            raise TypeError(f"unknown hooks {sorted(unknown)}; known: {sorted(self._hooks)}")
        for where, fn in hooks.items():
            self._hooks[where].append(fn)
        try:
            yield
        finally:
            for where, fn in hooks.items():
                self._hooks[where].remove(fn)

    def __repr__(self) -> str:
        return f"<brewnet.Net '{self.name}' ({len(self.layers)} layers, phase " \
               f"{'TRAIN' if self.phase == TRAIN else 'TEST'})>"
