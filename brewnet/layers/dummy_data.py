"""DummyData: tops filled by fillers instead of read from a source (tests, benchmarks and
nets that need a constant blob)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..blob import Blob
from ..errors import NetError
from ..proto import caffe_pb2
from .base import Layer
from .fillers import check_filler, fill
from .input import check_shape
from .registry import register


@register
class DummyData(Layer):
    """No bottoms; top i has shape ``shape[i]`` (or the legacy num/channels/height/width) and
    is filled by ``data_filler[i]``. Constant fillers run once, at setup; any other filler
    runs on every forward (Caffe's refill), so each batch gets fresh random values."""

    type = "DummyData"
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        dp = self.param.dummy_data_param
        num_top = len(top)
        if len(dp.data_filler) not in (0, 1, num_top):
            raise self.error(f"dummy_data_param gives {len(dp.data_filler)} data_filler for "
                             f"{num_top} tops; give none, one, or one per top",
                             field="dummy_data_param")
        if not dp.data_filler:
            self.fillers = [caffe_pb2.FillerParameter(type="constant", value=0)] * num_top
        elif len(dp.data_filler) == 1:
            self.fillers = [dp.data_filler[0]] * num_top
        else:
            self.fillers = list(dp.data_filler)
        for filler in self.fillers:  # a bad type fails here, not at the first forward
            self._fill_checked(check_filler, filler)
        self.refill = [f.type != "constant" for f in self.fillers]
        self.shapes = self._shapes(num_top)
        for i, (t, shape, filler, refill) in enumerate(zip(top, self.shapes, self.fillers,
                                                            self.refill, strict=True)):
            check_shape(self, shape, f"dummy_data_param shape for top {i}", "dummy_data_param")
            t.reshape(shape)
            if not refill:
                self._fill_top(t, filler)

    def _fill_checked(self, run: Callable[..., Any], filler: caffe_pb2.FillerParameter,
                      *args: Any) -> Any:
        """``run(filler, *args)`` with a filler's NetError re-raised naming this layer."""
        try:
            return run(filler, *args)
        except NetError as e:
            raise self.error(f"data_filler: {e.message}") from None

    def _fill_top(self, top: Blob, filler: caffe_pb2.FillerParameter) -> None:
        top.data[...] = self._fill_checked(fill, filler, tuple(top.data.shape), top.xp)

    def _shapes(self, num_top: int) -> list[tuple[int, ...]]:
        """One shape per top, from ``shape`` or from the legacy 4-D fields."""
        dp = self.param.dummy_data_param
        legacy = [dp.num, dp.channels, dp.height, dp.width]
        if any(legacy):
            if dp.shape:
                raise self.error("dummy_data_param sets both shape and the legacy "
                                 "num/channels/height/width; use shape only",
                                 field="dummy_data_param")
            names = ("num", "channels", "height", "width")
            for name, field in zip(names, legacy, strict=True):
                if len(field) not in (1, num_top):
                    raise self.error(f"dummy_data_param gives {len(field)} {name} values for "
                                     f"{num_top} tops; give one, or one per top",
                                     field="dummy_data_param")
            return [tuple(int(f[i if len(f) > 1 else 0]) for f in legacy)
                    for i in range(num_top)]
        if len(dp.shape) not in (1, num_top):
            raise self.error(f"dummy_data_param gives {len(dp.shape)} shapes for {num_top} "
                             "tops; give one, or one per top", field="dummy_data_param")
        return [tuple(int(d) for d in dp.shape[i if len(dp.shape) > 1 else 0].dim)
                for i in range(num_top)]

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the shapes are fixed at setup."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for t, filler, refill in zip(top, self.fillers, self.refill, strict=True):
            if refill:
                self._fill_top(t, filler)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """Nothing: there are no bottoms."""
