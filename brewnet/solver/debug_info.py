"""``debug_info: true``: Caffe's per-blob magnitudes (mean absolute value, ``asum / count``) of
every top after its layer's forward, every bottom gradient and parameter gradient after its
layer's backward, and every parameter after the update, worded as Caffe's Net prints them.

As in Caffe, they are printed on display iterations only, for the train net. The pass runs one
layer at a time so each ``[Forward]`` line shows the top as its layer left it, before any
in-place successor rewrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import get_array_module
from ..log import log
from .report import num

if TYPE_CHECKING:
    from ..net.plan import Plan


def supported(net: Any) -> bool:
    """Whether ``net`` has a plan to report on and hooks to watch it run (brewnet's Net)."""
    return hasattr(net, "plan") and hasattr(net, "hooked")


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


def forward_lines(plan: Plan, i: int) -> list[str]:
    """Caffe's ForwardDebugInfo for layer ``i``: each top's data, then each parameter's
    (by display name: its ParamSpec ``name``, else its index)."""
    step = plan.steps[i]
    name = step.name
    lines = [f"    [Forward] Layer {name}, top blob {blob} data: {num(mean_abs(top.data))}"
             for blob, top in zip(step.top_names, step.tops, strict=True)]
    lines += [f"    [Forward] Layer {name}, param blob {slot.display_name} data: "
              f"{num(mean_abs(p.data))}"
              for slot, p in zip(plan.slots[i], step.layer.blobs, strict=True)]
    return lines


def backward_lines(plan: Plan, i: int) -> list[str]:
    """Caffe's BackwardDebugInfo for layer ``i``: the diff of each bottom that gets a gradient,
    then of each parameter that does (numbered by index, as Caffe)."""
    step = plan.steps[i]
    layer, name = step.layer, step.name
    lines = [f"    [Backward] Layer {name}, bottom blob {blob} diff: {num(mean_abs(b.diff))}"
             for blob, b, need in zip(step.bottom_names, step.bottoms,
                                      step.bottom_need_backward, strict=True) if need]
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


def update_lines(plan: Plan) -> list[str]:
    """Caffe's UpdateDebugInfo for every parameter, after the update: data and the applied
    update (``diff``) of parameters that own themselves; for shared ones, the owner."""
    lines = []
    for step, slots in zip(plan.steps, plan.slots, strict=True):
        for slot, p in zip(slots, step.layer.blobs, strict=True):
            diff = num(mean_abs(p.diff))
            if slot.owner is None:
                lines.append(f"    [Update] Layer {step.name}, param {slot.display_name} data: "
                             f"{num(mean_abs(p.data))}; diff: {diff}")
            else:
                oi, oj = slot.owner
                lines.append(f"    [Update] Layer {step.name}, param blob {slot.display_name} "
                             f"(owned by layer {plan.steps[oi].name}, param "
                             f"{plan.slots[oi][oj].display_name}) diff: {diff}")
    return lines


def forward_backward(net: Any) -> float:
    """One forward/backward pass of ``net`` logging Caffe's debug lines as each layer runs
    (so a ``[Forward]`` line shows a top before an in-place successor rewrote it); returns the
    loss, as ``net.forward_backward()`` does."""
    plan = net.plan

    def after_forward(i: int) -> None:
        for line in forward_lines(plan, i):
            log.info(line)

    def after_backward(i: int) -> None:
        if plan.steps[i].need_backward:
            for line in backward_lines(plan, i):
                log.info(line)

    with net.hooked(after_forward=after_forward, after_backward=after_backward):
        loss = net.forward_backward()
    log.error(all_params_line(net))  # Caffe logs this one at ERROR level
    return loss


def log_update(net: Any) -> None:
    for line in update_lines(net.plan):
        log.info(line)
