"""MemoryData: batches sliced from NumPy arrays the program hands over (pycaffe's
``net.set_input_arrays(data, labels)``, which calls :meth:`MemoryData.reset`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blob import Blob
from ..errors import NetError, pycaffe_kind
from ..log import log
from .base import Layer
from .registry import register


@register
class MemoryData(Layer):
    """Tops: data (batch_size, channels, height, width) and label (batch_size,) — reshaped to
    (batch_size, 1, 1, 1) at each forward, as Caffe's MemoryDataLayer does.

    Each forward delivers the next ``batch_size`` rows of the arrays given to ``reset``,
    wrapping to the start after the last. The arrays are kept by reference, not copied, so
    later writes into them show in later batches (as in Caffe). Like Caffe, arrays given to
    ``reset`` are not transformed: a ``transform_param`` draws a warning and is ignored.
    """

    type = "MemoryData"
    exact_num_bottom = 0
    exact_num_top = 2
    param_fields = ("memory_data_param", "transform_param")  # read to warn it is unused
    is_data_source = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.memory_data_param
        self.batch_size, self.channels = int(p.batch_size), int(p.channels)
        self.height, self.width = int(p.height), int(p.width)
        if self.batch_size * self.channels * self.height * self.width == 0:
            raise self.error(f"memory_data_param batch_size ({self.batch_size}), channels "
                             f"({self.channels}), height ({self.height}) and width "
                             f"({self.width}) must all be set and positive",
                             field="memory_data_param")
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)
        self._data: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._pos = 0

    def reset(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Use ``data`` (N, channels, height, width) and ``labels`` (N,) or (N, 1, 1, 1),
        both float32 and C-contiguous, with N a multiple of batch_size; start at row 0."""
        if isinstance(labels, np.ndarray) and labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, None, None, None])
        self._check_array(data, "data", (self.channels, self.height, self.width))
        self._check_array(labels, "labels", (1, 1, 1))
        if data.shape[0] != labels.shape[0]:
            raise self._refused(f"data and labels arrays must have the same first dimension "
                                f"({data.shape[0]} vs {labels.shape[0]})")
        if data.shape[0] == 0 or data.shape[0] % self.batch_size:
            raise self._refused(f"the arrays' first dimension {data.shape[0]} must be a positive "
                                f"multiple of batch_size {self.batch_size}")
        if self.param.HasField("transform_param"):
            log.warning(f"layer '{self.name}' (MemoryData) does not transform array data on "
                        "reset; transform_param is ignored")
        self._data, self._labels, self._pos = data, labels.reshape(-1), 0

    def _check_array(self, arr: Any, what: str, trailing: tuple[int, int, int]) -> None:
        """pycaffe's CheckContiguousArray: 4-d, float32, C-contiguous, trailing dims fixed."""
        if not isinstance(arr, np.ndarray):
            raise self.error(f"{what} array must be a numpy.ndarray, not {type(arr).__name__}")
        if arr.ndim != 4:
            raise self._refused(f"{what} array must be 4-d, got shape {arr.shape}")
        if arr.dtype != np.float32:
            raise self._refused(f"{what} array must be float32, got {arr.dtype}; use "
                                ".astype(numpy.float32)")
        if not arr.flags.c_contiguous:
            raise self._refused(f"{what} array must be C contiguous; use "
                                "numpy.ascontiguousarray")
        if arr.shape[1:] != trailing:
            raise self._refused(f"{what} array has shape {arr.shape}; its (channels, height, "
                                f"width) must be {trailing}")

    def _refused(self, message: str) -> NetError:
        """set_input_arrays' refusal, a RuntimeError too, as pycaffe's (_caffe.cpp)."""
        return pycaffe_kind(NetError, RuntimeError)(message, layer=self.name,
                                                    layer_type=self.type)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the shapes are fixed by memory_data_param."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        if self._data is None:
            raise self.error("no arrays to read: call net.set_input_arrays(data, labels) "
                             "(MemoryData.reset) before forward")
        b, pos = self.batch_size, self._pos
        top[0].reshape(b, self.channels, self.height, self.width)
        top[1].reshape(b, 1, 1, 1)
        top[0].data[...] = top[0].xp.asarray(self._data[pos:pos + b])
        top[1].data[...] = top[1].xp.asarray(self._labels[pos:pos + b]).reshape(b, 1, 1, 1)
        self._pos = (pos + b) % self._data.shape[0]

    def seek_batch(self, index: int) -> None:
        if self._data is not None:
            self._pos = (index * self.batch_size) % self._data.shape[0]
