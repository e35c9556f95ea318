"""Gradient exchange for data-parallel training, with Caffe's multi-GPU semantics (BVLC
``parallel.cpp``): rank 0's weights are broadcast before training; after backward each
parameter's gradient is summed over the ranks and scaled by 1/N in float32, so every rank
applies the same update.

Used as pycaffe uses Caffe's NCCL object::

    sync = GradientSync(solver, comm)
    sync.bcast()
    solver.add_callback(sync)            # on_start / on_gradients_ready
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(sync)  # sync(i): start reducing layer i's gradients

Buckets: the learnable parameters owned by one layer are packed into one slice of a flat
buffer, in backward order. Layer-wise, a layer's slice starts reducing (non-blocking) as soon
as backward has passed it, during the last of ``iter_size`` passes; ``on_gradients_ready``
starts the slices not yet started, waits for all and unpacks. Both ways sum the same numbers,
so ``layer_wise_reduce`` changes only when the communication happens. Unlike Caffe's, the
layer-wise path also handles shared weights: a shared blob belongs to its owner's bucket, and
the owner is the first user, whose backward runs last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .comm import Communicator, Pending

if TYPE_CHECKING:
    from ..solver import Solver


class GradientSync:
    """Joins ``solver`` to the other ranks of ``comm`` (``solver.comm`` becomes ``comm``)."""

    def __init__(self, solver: Solver, comm: Communicator):
        self.solver = solver
        self.comm = comm
        solver.comm = comm
        params = solver.net.learnable_params
        self._params = params
        owned: dict[int, list[int]] = {}
        for step, slots in enumerate(solver.net.plan.slots):
            for slot in slots:
                if slot.owner is None:
                    owned.setdefault(step, []).append(slot.learnable)
        # (first, end) of each parameter in the flat buffer, and each layer's bucket slice,
        # laid out in backward order (last layer first).
        self._span: dict[int, tuple[int, int]] = {}
        self._bucket: dict[int, tuple[int, int]] = {}
        self._owned = owned
        offset = 0
        for step in sorted(owned, reverse=True):
            first = offset
            for k in owned[step]:
                self._span[k] = (offset, offset + int(params[k].count))
                offset += int(params[k].count)
            self._bucket[step] = (first, offset)
        xp = params[0].xp if params else np
        self.flat = xp.zeros(offset, dtype=np.float32)
        self._scale = np.float32(1) / np.float32(comm.size)
        self._pending: dict[int, Pending] = {}
        self._passes = 0

    @property
    def gradient_bytes(self) -> int:
        """Bytes each rank sends into the all-reduce per iteration (the flat buffer)."""
        return int(self.flat.nbytes)

    def bcast(self) -> None:
        """Give every rank rank 0's parameter values (fillers, --weights or a restore)."""
        for blob in self._params:
            self.comm.bcast(blob.data)

    def on_start(self) -> None:
        self._passes = 0
        self._pending.clear()

    def __call__(self, layer: int) -> None:
        """After layer ``layer``'s backward: on the iteration's last pass, start reducing the
        gradients it owns (they are final: every other user of them ran backward before)."""
        last_pass = self._passes == self.solver.param.iter_size - 1
        if last_pass and layer in self._bucket:
            for pending in self._pending.values():
                pending.test()  # let the buckets already started move on
            self._start(layer)
        if layer == 0:
            self._passes += 1

    def _start(self, layer: int) -> None:
        for k in self._owned[layer]:
            a, b = self._span[k]
            self.flat[a:b] = self._params[k].diff.reshape(-1)
        first, end = self._bucket[layer]
        self._pending[layer] = self.comm.start_allreduce(self.flat[first:end])

    def drain(self) -> None:
        """Wait for the reductions already started, without using them: every rank leaves
        together (a divergence) and MPI finds no request outstanding at exit."""
        for pending in self._pending.values():
            pending.wait()
        self._pending.clear()

    def on_gradients_ready(self) -> None:
        """Reduce whatever the layer-wise hook did not start, wait, and write back each
        gradient as sum × 1/N (float32, as Caffe's ``caffe_gpu_scal``)."""
        for layer in self._bucket:
            if layer not in self._pending:
                self._start(layer)
        for pending in self._pending.values():
            pending.wait()
        self._pending.clear()
        for k, (a, b) in self._span.items():
            diff = self._params[k].diff
            diff[...] = self.flat[a:b].reshape(diff.shape) * self._scale
