"""HDF5Output: saves its two bottoms as the datasets "data" and "label" of an .h5 file
(Caffe's HDF5OutputLayer), e.g. to dump features and labels of a test set."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import to_numpy
from ..blob import Blob
from .base import Layer
from .hdf5_data import import_h5py
from .registry import register

DATASETS = ("data", "label")


@register
class HDF5Output(Layer):
    """Bottoms: data and label with the same first dimension N; no tops.

    The file ``hdf5_output_param.file_name`` is created (emptied) at setup. Each forward
    appends its N rows to both datasets, stored in Caffe's legacy 4-D shape (N, C, H, W), and
    closes the file again, so it is complete and readable after every forward (Caffe keeps it
    open and can write only once). Backward passes nothing down: the bottoms' diffs are 0.
    """

    type = "HDF5Output"
    exact_num_bottom = 2
    exact_num_top = 0

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._h5py = import_h5py(self)
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty; name the .h5 file to "
                             "write", field="hdf5_output_param.file_name")
        try:
            with self._h5py.File(self.file_name, "w"):
                pass
        except OSError as e:
            raise self.error(f"cannot create HDF5 file '{self.file_name}' ({e})") from None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        data, label = bottom[0].data, bottom[1].data
        if data.ndim == 0 or label.ndim == 0 or data.shape[0] != label.shape[0]:
            raise self.shape_error(f"data {tuple(data.shape)} and label {tuple(label.shape)} "
                                   "must have the same first dimension")
        for name, arr in zip(DATASETS, (data, label), strict=True):
            if arr.ndim > 4:
                raise self.shape_error(f"bottom {name} {tuple(arr.shape)} has more than 4 "
                                       "axes; Caffe saves (N, C, H, W)")

    @staticmethod
    def _legacy_4d(arr: Any) -> np.ndarray:
        """(N, C, H, W) with missing axes as 1, as Caffe's legacy num/channels/height/width."""
        host = to_numpy(arr)
        return host.reshape(host.shape + (1,) * (4 - host.ndim))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        arrays = [self._legacy_4d(b.data) for b in bottom]
        try:
            with self._h5py.File(self.file_name, "a") as f:
                for name, arr in zip(DATASETS, arrays, strict=True):
                    self._append(f, name, arr)
        except OSError as e:
            raise self.error(f"cannot write HDF5 file '{self.file_name}' ({e})") from None

    def _append(self, f: Any, name: str, arr: np.ndarray) -> None:
        if name not in f:
            f.create_dataset(name, data=arr, maxshape=(None,) + arr.shape[1:],
                             chunks=tuple(max(1, d) for d in arr.shape))
            return
        ds = f[name]
        if ds.shape[1:] != arr.shape[1:]:
            raise self.error(f"bottom {name} rows have shape {arr.shape[1:]} but "
                             f"'{self.file_name}' holds rows of {ds.shape[1:]}", blob=name,
                             field="bottom")
        start = ds.shape[0]
        ds.resize(start + arr.shape[0], axis=0)
        ds[start:] = arr

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """Nothing flows back (Caffe's Backward is empty); requested diffs are zeroed."""
        for down, b in zip(propagate_down, bottom, strict=False):
            if down:
                b.diff[...] = 0
