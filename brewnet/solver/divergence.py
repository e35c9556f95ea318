"""The NaN guard: notice when training diverges (a non-finite loss or parameter) and find the
first layer whose output went non-finite, so the error says where to look.

Caffe has no such guard (it trains on, printing ``loss = nan``); ``divergence = "continue"``
keeps that behaviour with a single warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import get_array_module
from ..errors import DivergenceError, SolverError
from ..log import log
from .report import num

if TYPE_CHECKING:
    from ..net.plan import Step

DIVERGENCE_MODES = ("stop", "continue")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of DIVERGENCE_MODES, else a SolverError listing them."""
    if mode not in DIVERGENCE_MODES:
        raise SolverError(f"unknown divergence mode '{mode}'; use one of: "
                          + ", ".join(DIVERGENCE_MODES))
    return mode


def is_finite(x: Any) -> bool:
    """Whether every value of ``x`` (a NumPy or CuPy array, or a scalar) is finite.

    One reduction without a temporary: a sum is finite only if every term is; only when the
    sum is not (a real NaN/inf, or a finite sum that overflowed) is the exact test run.
    """
    xp = get_array_module(x)
    with np.errstate(all="ignore"):
        if bool(xp.isfinite(x.sum() if hasattr(x, "sum") else x)):
            return True
        return bool(xp.isfinite(x).all())


def all_finite(arrays: Iterable[Any]) -> bool:
    """Whether every array holds only finite values, with one synchronisation on a GPU: the
    per-array sums are added on the device and only a non-finite total is looked into."""
    arrays = list(arrays)
    if not arrays:
        return True
    xp = get_array_module(arrays[0])
    with np.errstate(all="ignore"):
        total = sum(a.sum() for a in arrays)
        if bool(xp.isfinite(total)):
            return True
    return first_nonfinite(arrays) is None


def first_nonfinite(arrays: Iterable[Any]) -> int | None:
    """The index of the first array holding a NaN or an infinity, or None."""
    for i, a in enumerate(arrays):
        if not is_finite(a):
            return i
    return None


def _nonfinite_top(step: Step) -> tuple[str, str, str] | None:
    """(layer, layer type, top blob) of the step's first top holding non-finite values."""
    for name, top in zip(step.top_names, step.tops, strict=True):
        if not is_finite(top.data):
            return step.name, step.layer.type, name
    return None


class _Found(Exception):
    """Stops the replay at the first non-finite top, carrying where it is."""

    def __init__(self, hit: tuple[str, str, str]):
        super().__init__(hit)
        self.hit = hit


def _replay(net: Any) -> tuple[str, str, str] | None:
    """Run the forward pass again, checking each layer's tops as it finishes (an
    after_forward hook): exact even where in-place layers (BatchNorm, Scale, ReLU) rewrite a
    blob later.

    Layers without bottoms (data sources) are not rerun, so no batch is consumed; if a later
    layer works in place on a source's top, a replay would apply it twice, so None.
    """
    steps = net.plan.steps
    source_tops = {id(t) for s in steps if not s.bottoms for t in s.tops}
    if any(s.bottoms and any(id(t) in source_tops for t in s.tops) for s in steps):
        return None

    def check(i: int) -> None:
        if (hit := _nonfinite_top(steps[i])) is not None:
            raise _Found(hit)

    with np.errstate(all="ignore"), net.hooked(after_forward=check):
        try:  # in net order: sources' tops as the last pass left them, the rest rerun
            for reruns, group in groupby(range(len(steps)), key=lambda i: bool(steps[i].bottoms)):
                indices = list(group)
                if reruns:
                    net._forward(indices[0], indices[-1])
                else:
                    for i in indices:
                        check(i)
        except _Found as e:
            return e.hit
    return None


def locate_nonfinite_output(net: Any, replay: bool = True) -> tuple[str, str, str] | None:
    """(layer name, layer type, top blob) of the first layer, in net order, whose output is
    non-finite; None when every top is finite (or the net has no plan).

    ``replay`` reruns the forward pass layer by layer for an exact answer; it draws random
    numbers (Dropout) and updates running statistics again, so only use it when the run is
    being abandoned. Without it (or when the replay cannot tell), the tops as the last pass
    left them are scanned.
    """
    if not hasattr(net, "plan"):
        return None
    found = next(filter(None, map(_nonfinite_top, net.plan.steps)), None)
    if replay:
        try:
            exact = _replay(net)
        except Exception:  # a layer choking on NaNs: keep the scan's answer
            exact = None
        if exact is not None:
            return exact
    return found


def param_owner_names(net: Any) -> list[str]:
    """For each learnable parameter, ``parameter j of layer 'name'`` (the layer owning it)."""
    names: dict[int, str] = {}
    plan = getattr(net, "plan", None)
    for step, slots in zip(plan.steps, plan.slots, strict=True) if plan else ():
        for slot in slots:
            if slot.owner is None:
                names[slot.learnable] = (f"parameter {slot.index} of layer '{step.name}' "
                                         f"({step.layer.type})")
    return [names.get(k, f"learnable parameter {k}") for k in range(len(net.learnable_params))]


def describe_bad_params(net: Any, params: Sequence[Any]) -> str | None:
    """Which learnable parameter (first in net order) holds non-finite values after an update,
    and whether its update (the ``diff``) was already non-finite; None if all are finite."""
    if all_finite([p.data for p in params]):
        return None
    k = first_nonfinite(p.data for p in params)
    if k is None:
        return None
    what = param_owner_names(net)[k]
    cause = "its update was non-finite" if not is_finite(params[k].diff) \
        else "the update overflowed it"
    return f"{what} became non-finite in the update ({cause})"


def diverged_message(iteration: int, detail: str, last_snapshot: str | None) -> str:
    """The one line a DivergenceError carries: when, what, where, what was kept, what to do."""
    kept = (f"the last good snapshot {last_snapshot} is kept" if last_snapshot
            else "no snapshot was written before it")
    return (f"training diverged at iteration {iteration}: {detail}; stopped without "
            f"snapshotting the diverged weights ({kept}); lower base_lr or set clip_gradients, "
            "or pass --on-divergence continue (Solver.divergence = 'continue') to go on as "
            "Caffe does")


def output_location(found: tuple[str, str, str] | None) -> str:
    """Where the non-finite values first appear, from ``locate_nonfinite_output``."""
    if found is None:
        return "every top blob is finite (the weighted sum of the losses overflowed)"
    layer, layer_type, blob = found
    return f"the first non-finite output is top blob '{blob}' of layer '{layer}' ({layer_type})"


class DivergenceGuard:
    """The Solver's side of the guard: checks after each pass and each update, and what a
    divergence does (``divergence`` mode ``stop`` or ``continue``). Needs the Solver's
    ``net``, ``iter``, ``_divergence``, ``_divergence_warned`` and ``_last_snapshot``."""

    net: Any
    iter: int
    _divergence: str
    _divergence_warned: bool
    _last_snapshot: str | None

    def _guarding(self) -> bool:
        return self._divergence == "stop" or not self._divergence_warned

    def _diverged(self, iteration: int, detail: str) -> None:
        """Raise (``stop``) or warn once (``continue``) about a divergence."""
        if self._divergence == "stop":
            raise DivergenceError(diverged_message(iteration, detail,
                                                         self._last_snapshot))
        self._divergence_warned = True
        log.warning(f"Iteration {iteration}: training diverged: {detail}; continuing as Caffe "
                    "does (divergence = continue); this warning is not repeated")

    def _check_loss(self, loss: np.float32) -> None:
        """After each forward/backward pass: a NaN/inf loss is a divergence; find the first
        layer whose output went non-finite (replaying the pass only when stopping)."""
        if not self._guarding() or np.isfinite(loss):
            return
        found = locate_nonfinite_output(self.net, replay=self._divergence == "stop")
        self._diverged(self.iter, f"the loss is {num(loss)}; {output_location(found)}")

    def _check_rank_loss(self, mean: np.float32, own: np.float32, ranks: int) -> np.float32:
        """The loss check of data-parallel training, on the mean over the ranks, so that every
        rank stops together; returns ``mean``. A finite loss of this rank's own means another
        rank diverged, which the message says instead of pointing at this rank's layers."""
        if np.isfinite(mean) or not np.isfinite(own) or not self._guarding():
            self._check_loss(mean)
        else:
            self._diverged(self.iter, f"the mean loss over the {ranks} ranks is {num(mean)}, "
                           f"while this rank's own is {num(own)}: another rank diverged")
        return mean

    def _check_params(self) -> None:
        """After each update: one fused finiteness test over every learnable parameter."""
        if not self._guarding():
            return
        bad = describe_bad_params(self.net, self.net.learnable_params)
        if bad is not None:
            self._diverged(self.iter - 1, bad)
