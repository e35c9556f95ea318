"""NetState filtering: which layers of a net exist in a phase/level/stage (Caffe's
``Net::FilterNet`` and ``StateMeetsRule``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import NetError, pycaffe_kind
from ..proto import caffe_pb2


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """A rule is met when its phase (if set) is the state's, the level lies within
    [min_level, max_level] (each if set), all of its stages are present and none of its
    not_stages are."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Caffe's rule: no include rules means included; any met exclude rule drops the layer;
    any met include rule keeps it."""
    if len(layer.include) and len(layer.exclude):
        raise pycaffe_kind(NetError, ValueError)(  # pycaffe's draw.py: ValueError
            "has both include and exclude rules; Caffe allows only one kind per layer",
            layer=layer.name, layer_type=layer.type)
    if len(layer.include):
        return any(state_meets_rule(state, r) for r in layer.include)
    return not any(state_meets_rule(state, r) for r in layer.exclude)


def net_state(param: caffe_pb2.NetParameter, phase: int, level: int | None = None,
              stages: Sequence[str] = ()) -> caffe_pb2.NetState:
    """The definition's own ``state`` with ``phase`` set, ``level`` set unless None, and
    ``stages`` added: how Caffe's Net combines a file's state with its arguments."""
    state = caffe_pb2.NetState()
    state.CopyFrom(param.state)
    state.phase = phase
    if level is not None:
        state.level = level
    state.stage.extend(stages)
    return state


def included_layers(param: caffe_pb2.NetParameter, state: caffe_pb2.NetState) -> list[int]:
    """Indices of the layers of ``param`` that exist in ``state``."""
    return [i for i, layer in enumerate(param.layer) if layer_included(layer, state)]


def filter_net(param: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
               kept: list[int] | None = None) -> caffe_pb2.NetParameter:
    """A copy of ``param`` holding only the layers that exist in ``state`` (``kept``, when
    the caller has them already)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for i in included_layers(param, state) if kept is None else kept:
        out.layer.add().CopyFrom(param.layer[i])
    out.state.CopyFrom(state)
    return out

