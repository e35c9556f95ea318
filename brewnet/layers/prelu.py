"""PReLU: a ReLU whose negative slope is learned, one per channel or one for all."""

from __future__ import annotations

import numpy as np

from ..blob import Blob
from ..proto import caffe_pb2
from .base import Layer, learnable_shape_check
from .registry import register
from .structure import count


@register
class PReLU(Layer):
    """y = max(0, x) + a_c·min(0, x) for bottom (N, C, ...), a of shape (C,), or a single
    shared slope (a 0-axis blob) with ``channel_shared``; the default filler is constant 0.25.

    Backward: dx = dy·(x > 0 ? 1 : a_c), da_c += Σ dy·x over x <= 0. In place, forward keeps a
    copy of the input for backward (as Caffe's bottom_memory_).
    """

    type = "PReLU"
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        if len(shape) < 2:
            raise self.shape_error(f"bottom has {len(shape)} axes but PReLU needs at least 2 "
                                   "(N, C, ...)")
        p = self.param.prelu_param
        self.channel_shared = bool(p.channel_shared)
        self.channels = shape[1]
        slope_shape = () if self.channel_shared else (self.channels,)
        self._input = self._scratch = self._mask = None
        if self.blobs:
            if len(self.blobs) != 1:
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs 1")
            learnable_shape_check(self, 0, slope_shape)
            return
        filler = p.filler
        if not p.HasField("filler"):
            filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
        self.blobs.append(self.fill_blob(filler, slope_shape, "filler", bottom[0].xp))

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].data.shape)
        if len(shape) < 2 or shape[1] != self.channels:
            raise self.shape_error(f"bottom shape {shape} does not have the {self.channels} "
                                   "channels (axis 1) the slopes were made for")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        elif (self._input is None or self._input.shape != shape
              or not isinstance(self._input, type(bottom[0].data))):
            self._input = bottom[0].xp.empty(shape, dtype=np.float32)
        data = bottom[0].data
        if (self._scratch is None or self._scratch.shape != shape
                or not isinstance(self._scratch, type(data))):
            self._scratch = bottom[0].xp.empty(shape, dtype=np.float32)
            self._mask = bottom[0].xp.empty(shape, dtype=bool)
        # view as (N, C, spatial) so one slope column broadcasts over the rest
        self.view = (shape[0], self.channels, count(shape, 2))

    def _slope(self) -> object:
        a = self.blobs[0].data
        return a.reshape(1, 1, 1) if self.channel_shared else a.reshape(1, -1, 1)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        x = bottom[0].data
        if top[0] is bottom[0]:
            self._input[...] = x
            x = self._input
        x = x.reshape(self.view)
        y = top[0].data.reshape(self.view)
        neg = xp.minimum(x, 0, out=self._scratch.reshape(self.view))
        neg *= self._slope()
        xp.maximum(x, 0, out=y)
        y += neg

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        x = (self._input if top[0] is bottom[0] else bottom[0].data).reshape(self.view)
        dy = top[0].diff.reshape(self.view)
        t = self._scratch.reshape(self.view)
        nonpositive = xp.less_equal(x, 0, out=self._mask.reshape(self.view))
        if self.param_propagate_down[0]:
            xp.multiply(dy, x, out=t)
            t *= nonpositive
            total = t.sum(axis=(0, 2)) if not self.channel_shared else t.sum()
            self.blobs[0].diff += total.reshape(self.blobs[0].diff.shape)
        if propagate_down[0]:
            # factor = 1 where x > 0, a_c elsewhere: 1 + (a_c − 1)·[x <= 0]
            xp.multiply(nonpositive, self._slope() - np.float32(1), out=t)
            t += np.float32(1)
            xp.multiply(dy, t, out=bottom[0].diff.reshape(self.view))
