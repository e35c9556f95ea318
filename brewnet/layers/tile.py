"""Tile: repeats the bottom ``tiles`` times along one axis (the whole block from that axis on
is repeated, as Caffe lays it out)."""

from __future__ import annotations

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import canonical_axis, count


@register
class Tile(Layer):
    """(outer, inner) -> (outer, tiles · inner) with outer = count(..axis), inner =
    count(axis..): top axis ``axis`` grows ``tiles``-fold; backward sums over the copies."""

    type = "Tile"
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is bottom[0]:
            raise self.error("Tile cannot run in place; give its top another name")
        tp = self.param.tile_param
        shape = tuple(bottom[0].data.shape)
        self.axis = canonical_axis(self, tp.axis, len(shape))
        if tp.tiles <= 0:
            raise self.error(f"tile_param.tiles is {tp.tiles}; give a positive number of tiles",
                             field="tile_param.tiles")
        self.tiles = int(tp.tiles)
        self.outer = count(shape, 0, self.axis)
        self.inner = count(shape, self.axis)
        top[0].reshape(shape[:self.axis] + (shape[self.axis] * self.tiles,)
                       + shape[self.axis + 1:])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        src = bottom[0].data.reshape(self.outer, 1, self.inner)
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = src

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
        dy.sum(axis=1, out=bottom[0].diff.reshape(self.outer, self.inner))
