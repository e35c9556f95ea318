"""Parameter: a learned blob exposed as a top, so any layer can consume a free parameter."""

from __future__ import annotations

from ..blob import Blob
from .base import Layer, learnable_shape_check
from .registry import register


@register
class Parameter(Layer):
    """No bottoms; top = the layer's one blob of ``parameter_param.shape`` (zeros until
    trained or loaded). Backward adds the top diff into the blob's diff."""

    type = "Parameter"
    exact_num_bottom = 0
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        if self.blobs:  # given by the net (shared or loaded)
            if len(self.blobs) != 1:
                raise self.shape_error(f"has {len(self.blobs)} parameter blobs but needs 1")
            learnable_shape_check(self, 0, self.shape)
            return
        if any(d < 0 for d in self.shape):
            raise self.error(f"parameter_param.shape {list(self.shape)} has a negative dim",
                             field="parameter_param.shape")
        # Caffe allocates the blob without a filler, so it starts at zero.
        self.blobs.append(Blob(self.shape, xp=top[0].xp))

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].reshape(self.shape)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].data[...] = self.blobs[0].data

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if self.param_propagate_down and self.param_propagate_down[0]:
            self.blobs[0].diff += top[0].diff
