"""Embed: a lookup table. Each bottom value is an integer index (stored as a float) into the
rows of a learned (input_dim, num_output) weight; a one-hot InnerProduct done by gathering."""

from __future__ import annotations

from ..blob import Blob
from .base import Layer
from .registry import register


@register
class Embed(Layer):
    """top = W[index] (+ b): bottom of any shape S gives top S + (num_output,). Backward
    scatter-adds the top diff into the indexed rows of W (and sums it into b); indices get
    no gradient."""

    type = "Embed"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        ep = self.param.embed_param
        if ep.num_output == 0:
            raise self.error("embed_param.num_output must be set to a positive number",
                             field="embed_param.num_output")
        if ep.input_dim == 0:
            raise self.error("embed_param.input_dim must be set to the number of indices",
                             field="embed_param.input_dim")
        self.num_output = int(ep.num_output)
        self.input_dim = int(ep.input_dim)
        self.bias_term = bool(ep.bias_term)
        specs = [((self.input_dim, self.num_output), ep.weight_filler, "weight_filler")]
        if self.bias_term:
            specs.append(((self.num_output,), ep.bias_filler, "bias_filler"))
        self.init_params(specs, bottom[0].xp)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("Embed cannot run in place; give its top another name")
        top[0].reshape(tuple(bottom[0].data.shape) + (self.num_output,))

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Indices have no gradient, so force_backward does not ask for one."""
        return False

    def _indices(self, bottom: Blob):
        """The bottom as integer indices, checked to be whole numbers in [0, input_dim)."""
        xp = bottom.xp
        x = bottom.data.reshape(-1)
        idx = x.astype(xp.int64)
        if x.size and not bool(((idx == x) & (idx >= 0) & (idx < self.input_dim)).all()):
            bad = x[(idx != x) | (idx < 0) | (idx >= self.input_dim)][0]
            raise self.error(f"bottom value {float(bad)} is not an integer index in "
                             f"[0, {self.input_dim}); fix the input or embed_param.input_dim",
                             field="embed_param.input_dim")
        return idx

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        y = top[0].data.reshape(-1, self.num_output)
        xp.take(self.blobs[0].data, self._indices(bottom[0]), axis=0, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[0]:
            raise self.error("cannot backpropagate to the indices of an Embed layer; set "
                             "propagate_down: false on its bottom", field="propagate_down")
        xp = bottom[0].xp
        dy = top[0].diff.reshape(-1, self.num_output)
        want = self.param_propagate_down
        if want[0]:
            xp.add.at(self.blobs[0].diff, self._indices(bottom[0]), dy)
        if self.bias_term and want[1]:
            self.blobs[1].diff += dy.sum(axis=0)
