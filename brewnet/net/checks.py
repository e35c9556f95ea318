"""Compile a net without running it and keep going after a problem, to list every problem at
once (``brewnet check``), with the blob shape table, the parameter count and the memory of
what compiled.

A layer that fails is left out and so is everything downstream of it (a consumer of a missing
blob would only repeat the same fault). Data layers read their first record, as they do when a
net is built, to know their shapes; nothing else is read and nothing runs forward.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import BrewnetError
from ..proto import caffe_pb2
from ..proto.positions import Node
from .memory import MemoryUse, net_memory
from .net import Net


class CheckedNet(Net):
    """A Net that records compile errors in ``problems`` instead of raising the first."""

    collects_problems = True


@dataclass
class NetCheck:
    """What checking one net found: ``net`` is None when nothing could be compiled (the file
    does not parse)."""

    title: str
    net: Net | None
    errors: list[BrewnetError] = field(default_factory=list)
    warnings: list[BrewnetError] = field(default_factory=list)
    memory: MemoryUse | None = None


def check_net(model: str | os.PathLike | caffe_pb2.NetParameter, *, phase: int = caffe_pb2.TEST,
              level: int = 0, stages: Sequence[str] = (), state: caffe_pb2.NetState | None = None,
              source: str | None = None, layout: Node | None = None,
              weights: Sequence[str] = (), title: str | None = None,
              history_slots: int = 0) -> NetCheck:
    """Compile ``model`` (for ``state``, or phase/level/stages) collecting every problem, then
    copy ``weights`` into it to check their shapes; the data threads are stopped again. The
    memory of what compiled is measured with ``history_slots`` solver arrays per learnable
    parameter (a net too large for the available memory is one of the problems)."""
    state = state or caffe_pb2.NetState(phase=phase, level=level, stage=list(stages))
    name = "TRAIN" if state.phase == caffe_pb2.TRAIN else "TEST"
    if title is None:
        where = source if isinstance(model, caffe_pb2.NetParameter) else os.fspath(model)
        title = f"{where or 'net'} ({name})"
    try:
        if isinstance(model, caffe_pb2.NetParameter):
            net = CheckedNet(model, state=state, source=source, layout=layout,
                             history_slots=history_slots)
        else:
            net = CheckedNet(model, phase=state.phase, level=state.level,
                             stages=list(state.stage), history_slots=history_slots)
    except BrewnetError as e:
        return NetCheck(title, None, [e])
    try:
        result = NetCheck(title, net, list(net.problems),
                          memory=net_memory(net.plan, history_slots))
        if not result.errors:
            for path in weights:
                try:
                    net.copy_from(path)
                except BrewnetError as e:
                    result.errors.append(e)
        result.warnings = list(net.warnings)
    finally:
        net.close()
    return result


def parameter_count(net: Net) -> int:
    """Learnable values of the net, each shared blob counted once."""
    return sum(int(p.count) for p in net.learnable_params)


def shape_table(net: Net) -> list[str]:
    """One row per top of each layer (the compiler's Split layers left out): layer, type, top,
    shape (N, C, H, W) and the layer's parameter count."""
    rows = [("layer", "type", "top", "shape", "params")]
    for step in net.plan.steps:
        layer = step.layer
        if layer.type == "Split":
            continue
        n_params = sum(int(b.count) for b in layer.blobs)
        tops = step.top_names or ["-"]
        for j, (top, blob) in enumerate(zip(tops, step.tops or [None], strict=False)):
            shape = str(tuple(blob.shape)) if blob is not None else "-"
            first = j == 0
            rows.append((step.name if first else "", layer.type if first else "",
                         top, shape, f"{n_params:,}" if first and n_params else ""))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[k].ljust(widths[k]) for k in range(4)] + [r[4].rjust(widths[4])]
        out.append("  ".join(cells).rstrip())
    return out
