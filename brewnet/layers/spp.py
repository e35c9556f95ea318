"""Spatial pyramid pooling (Caffe's ``SPPLayer``): pool the bottom at several grid sizes and
concatenate the flattened results, giving a fixed-length vector for any input size.

Level ``l`` (``0 <= l < pyramid_height``) aims at ``2^l`` bins per side with Caffe's
``GetPoolingParam``: ``kernel = ceil(in / bins)``, ``pad = (kernel * bins - in + 1) // 2``,
``stride = kernel`` (per axis); the bins actually produced follow Pooling's size rule. Top:
``(N, sum over levels of C * OH_l * OW_l)``; with ``pyramid_height: 1`` Caffe hands the single
Pooling's 4-axis top ``(N, C, 1, 1)`` through unflattened, and so does brewnet.
"""

from __future__ import annotations

from ..blob import Blob
from ..errors import NetError
from ..proto import caffe_pb2
from .base import Layer
from .pooling import PoolingLayer
from .registry import register

_METHODS = {caffe_pb2.SPPParameter.MAX: caffe_pb2.PoolingParameter.MAX,
            caffe_pb2.SPPParameter.AVE: caffe_pb2.PoolingParameter.AVE,
            caffe_pb2.SPPParameter.STOCHASTIC: caffe_pb2.PoolingParameter.STOCHASTIC}


def level_geometry(level: int, height: int, width: int) -> tuple[tuple[int, int], ...]:
    """Caffe's GetPoolingParam for one pyramid level: ((kernel_h, kernel_w), (pad_h, pad_w))."""
    bins = 2 ** level
    kernel = (-(-height // bins), -(-width // bins))
    pad = tuple((k * bins - extent + 1) // 2 for k, extent in zip(kernel, (height, width),
                                                                 strict=True))
    return kernel, pad


@register
class SPPLayer(Layer):
    """Pooling pyramid over ``(N, C, H, W)``, each level flattened, concatenated on axis 1."""

    type = "SPP"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.spp_param
        if p.pyramid_height < 1:
            raise self.error("pyramid_height must be at least 1")
        if p.pool not in _METHODS:
            raise self.error(f"unknown pool method {p.pool}")
        self._height = int(p.pyramid_height)
        self._pool = _METHODS[p.pool]
        self._levels: list[PoolingLayer] = []
        self._outputs: list[Blob] = []
        self._key: tuple | None = None

    def _make_levels(self, bottom: Blob, height: int, width: int) -> None:
        """One Pooling layer per level for this input size (Caffe rebuilds them on reshape)."""
        self._levels, self._outputs = [], []
        for level in range(self._height):
            (kh, kw), (ph, pw) = level_geometry(level, height, width)
            param = caffe_pb2.LayerParameter(name=f"{self.name} level {level}", type="Pooling")
            pp = param.pooling_param
            pp.pool = self._pool
            pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w = kh, kw, kh, kw
            pp.pad_h, pp.pad_w = ph, pw
            layer = PoolingLayer(param, self.phase)
            out = Blob(xp=bottom.xp)
            try:
                layer.set_up([bottom], [out])
            except NetError as e:
                raise self.shape_error(f"pyramid level {level} does not fit a {height}x{width} "
                                       f"input ({e.message}); lower pyramid_height") from None
            self._levels.append(layer)
            self._outputs.append(out)
        self._scratch = Blob(bottom.shape, xp=bottom.xp)  # each level's bottom gradient

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        shape = tuple(bottom[0].shape)
        if len(shape) != 4:
            raise self.shape_error(f"the bottom must have 4 axes (N, C, H, W); got shape {shape}")
        key = (shape, bottom[0].xp)
        if key != self._key:
            self._make_levels(bottom[0], shape[2], shape[3])
            self._key = key
        if self._height == 1:
            top[0].reshape(self._outputs[0].shape)
        else:
            top[0].reshape(shape[0], sum(out.count // shape[0] for out in self._outputs))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        n = bottom[0].shape[0]
        flat = top[0].data.reshape(n, -1)
        start = 0
        for layer, out in zip(self._levels, self._outputs, strict=True):
            layer.run_forward(bottom, [out])  # Caffe's Layer::Forward: reshape, then forward
            size = out.count // n
            flat[:, start:start + size] = out.data.reshape(n, size)
            start += size

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down or not propagate_down[0]:
            return
        n = bottom[0].shape[0]
        flat = top[0].diff.reshape(n, -1)
        start = 0
        for level, (layer, out) in enumerate(zip(self._levels, self._outputs, strict=True)):
            size = out.count // n
            out.diff[...] = flat[:, start:start + size].reshape(out.diff.shape)
            start += size
            # The first level writes the bottom gradient, the others add to it.
            target = bottom[0] if level == 0 else self._scratch
            layer.backward([out], [True], [target])
            if level:
                bottom[0].diff[...] += self._scratch.diff
