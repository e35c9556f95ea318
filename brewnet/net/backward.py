"""Which layers and bottoms need gradients (Caffe's need_backward analysis in ``Net::Init``):
a forward sweep (a blob needs a gradient if its producer needs backward, or as
``propagate_down`` says), a reverse sweep (only layers that reach a loss run backward, and
not for bottoms nobody propagates into), then ``force_backward``.
"""

from __future__ import annotations

from ..errors import NetError
from .plan import Step


def plan_backward(steps: list[Step], force_backward: bool) -> None:
    """Fill each step's ``need_backward`` and ``bottom_need_backward``; with
    ``force_backward`` every layer (and every parameter) gets a gradient."""
    blob_needs: dict[int, bool] = {}
    for step in steps:
        lp, layer = step.layer.param, step.layer
        if len(lp.propagate_down) not in (0, len(step.bottoms)):
            raise NetError(f"propagate_down has {len(lp.propagate_down)} values for "
                           f"{len(step.bottoms)} bottoms; give one per bottom",
                           layer=lp.name, layer_type=lp.type, field="propagate_down")
        need = False
        flags = []
        for j, b in enumerate(step.bottoms):
            blob_flag = blob_needs.get(id(b), False)
            need |= blob_flag
            flags.append(bool(lp.propagate_down[j]) if len(lp.propagate_down) else blob_flag)
        need |= any(layer.param_propagate_down)
        step.bottom_need_backward = flags
        step.need_backward = need
        if need:
            for t in step.tops:
                blob_needs[id(t)] = True
    under_loss: set[int] = set()
    skip_backprop: set[int] = set()
    for step in reversed(steps):
        contributes, skip = False, True
        for t, w in zip(step.tops, step.loss_weights, strict=True):
            if w != 0 or id(t) in under_loss:
                contributes = True
            if id(t) not in skip_backprop:
                skip = False
        if step.need_backward and skip:
            step.need_backward = False
            step.bottom_need_backward = [False] * len(step.bottoms)
        if not contributes:
            step.need_backward = False
        for j, b in enumerate(step.bottoms):
            if contributes:
                under_loss.add(id(b))
            else:
                step.bottom_need_backward[j] = False
            if not step.bottom_need_backward[j]:
                skip_backprop.add(id(b))
    if force_backward:
        for step in steps:
            step.need_backward = True
            step.bottom_need_backward = [
                flag or step.layer.allow_force_backward(j)
                for j, flag in enumerate(step.bottom_need_backward)]
            step.layer.param_propagate_down = [True] * len(step.layer.blobs)
