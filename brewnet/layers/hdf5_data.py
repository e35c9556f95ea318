"""HDF5Data: rows of named datasets read from a list of .h5 files (Caffe's HDF5DataLayer).

Each top is named after a dataset present in every file ("data", "label", ...); a file is
loaded whole, its rows are delivered in order (or in a fresh random order per pass with
``shuffle``), and the files follow one another, wrapping around after the last. h5py is an
optional dependency, imported when the layer is set up.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import rng
from ..blob import Blob
from ..log import log
from .base import Layer
from .registry import register

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of every HDF5 file


def import_h5py(layer: Layer) -> Any:
    """The h5py module, or a NetError naming ``layer`` and the install command."""
    try:
        import h5py  # optional dependency
    except ImportError:
        raise layer.error("needs h5py to read and write HDF5 files: "
                          "pip install 'brewnet[hdf5]'") from None
    return h5py


@register
class HDF5Data(Layer):
    """Tops: one per dataset name, shaped (batch_size, *dataset.shape[1:]), float32.

    ``hdf5_data_param.source`` is a text file listing .h5 paths separated by whitespace
    (relative paths resolve from the working directory, as in Caffe). Every dataset of a file
    must have the same number of rows, and every file the same row shape.
    """

    type = "HDF5Data"
    exact_num_bottom = 0
    min_top = 1
    param_fields = ("hdf5_data_param", "transform_param")  # read to refuse it
    is_data_source = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.hdf5_data_param
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data; remove transform_param",
                             field="transform_param")
        if p.batch_size == 0:
            raise self.error("hdf5_data_param.batch_size must be positive; set batch_size",
                             field="hdf5_data_param.batch_size")
        if len(self.param.top) != len(top):
            raise self.error("each top must be named after the dataset it reads "
                             "(e.g. top: \"data\" top: \"label\")")
        self._h5py = import_h5py(self)
        self.batch_size, self.shuffle = int(p.batch_size), bool(p.shuffle)
        self.names = list(self.param.top)
        self.files = self._read_list(p.source)
        log.info(f"Number of HDF5 files: {len(self.files)}")
        self._file_order = np.arange(len(self.files))
        if self.shuffle:
            self._file_order = rng.generator().permutation(len(self.files))
            log.info("Shuffling HDF5 files")
        self._row_shapes: list[tuple[int, ...]] | None = None
        self._file_pos = 0
        self._load(self.files[self._file_order[0]])
        for t, arr in zip(top, self._arrays, strict=True):
            t.reshape((self.batch_size,) + arr.shape[1:])

    def _read_list(self, source: str) -> list[str]:
        if not source:
            raise self.error("hdf5_data_param.source is empty; name a text file listing "
                             "the .h5 files to read", field="hdf5_data_param.source")
        try:
            with open(source, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise self.error(f"cannot open the HDF5 file list '{source}' ({e.strerror or e}); "
                             f"relative paths resolve from {os.getcwd()}") from None
        try:
            names = None if b"\0" in raw else raw.decode("utf-8").split()
        except UnicodeDecodeError:
            names = None
        if names is None:  # Caffe would read garbage names from it
            what = "an HDF5 file itself" if raw.startswith(_HDF5_SIGNATURE) else "binary data"
            raise self.error(f"'{source}' is {what}, but hdf5_data_param.source must be a "
                             "text file listing .h5 paths, one a line; write the path of "
                             "the .h5 into such a list and name the list",
                             field="hdf5_data_param.source")
        if not names:
            raise self.error(f"the HDF5 file list '{source}' names no files; list at least "
                             "one .h5 file")
        return names

    def _load(self, path: str) -> None:
        """Read every top's dataset from ``path`` and draw a row order for it."""
        try:
            with self._h5py.File(path, "r") as f:
                arrays = []
                for name in self.names:
                    if name not in f:
                        raise self.error(f"HDF5 file '{path}' has no dataset '{name}' (it has "
                                         f"{', '.join(sorted(f.keys())) or 'none'}); name "
                                         "each top after a dataset", blob=name, field="top")
                    arrays.append(self._as_rows(f[name][()], path, name))
        except OSError as e:
            raise self.error(f"cannot open HDF5 file '{path}' ({e}); relative paths resolve "
                             f"from {os.getcwd()}") from None
        rows = arrays[0].shape[0]
        for name, arr in zip(self.names, arrays, strict=True):
            if arr.shape[0] != rows:
                raise self.error(f"HDF5 file '{path}': dataset '{name}' has {arr.shape[0]} "
                                 f"rows but '{self.names[0]}' has {rows}", blob=name, field="top")
        if rows == 0:
            raise self.error(f"HDF5 file '{path}' has no rows")
        shapes = [arr.shape[1:] for arr in arrays]
        if self._row_shapes is None:
            self._row_shapes = shapes
        for name, shape, first in zip(self.names, shapes, self._row_shapes, strict=True):
            if shape != first:
                raise self.error(f"HDF5 file '{path}': dataset '{name}' rows have shape "
                                 f"{shape} but the first file's have {first}", blob=name,
                                 field="top")
        self._arrays = arrays
        self._rows = rows
        self._row = 0
        self._order = (rng.generator().permutation(rows) if self.shuffle
                       else np.arange(rows))
        log.info(f"Successfully loaded {rows} rows")

    def _as_rows(self, values: Any, path: str, name: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.ndim == 0 or arr.dtype.kind not in "biuf":
            raise self.error(f"HDF5 file '{path}': dataset '{name}' must be a numeric array "
                             f"with a row axis, got {arr.dtype} of shape {arr.shape}",
                             blob=name, field="top")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _next_pass(self) -> None:
        """After a file's last row: the next file (a new file order after the last one), or
        the same file again; with shuffle, a new row order either way."""
        if len(self.files) > 1:
            self._file_pos += 1
            if self._file_pos == len(self.files):
                self._file_pos = 0
                if self.shuffle:
                    self._file_order = rng.generator().permutation(len(self.files))
            self._load(self.files[self._file_order[self._file_pos]])
        else:
            self._row = 0
            if self.shuffle:
                self._order = rng.generator().permutation(self._rows)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the shapes are fixed at setup."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        filled = 0
        while filled < self.batch_size:
            take = min(self.batch_size - filled, self._rows - self._row)
            rows = self._order[self._row:self._row + take]
            for t, arr in zip(top, self._arrays, strict=True):
                t.data[filled:filled + take] = t.xp.asarray(arr[rows])
            filled += take
            self._row += take
            if self._row == self._rows:
                self._next_pass()

    def seek_batch(self, index: int) -> None:
        """Restart at the first file of the current order and skip ``index`` batches."""
        if self._file_pos != 0:
            self._file_pos = 0
            self._load(self.files[self._file_order[0]])
        self._row = 0
        skip = index * self.batch_size
        if len(self.files) == 1 and not self.shuffle:
            skip %= self._rows
        while skip > 0:
            take = min(skip, self._rows - self._row)
            self._row += take
            skip -= take
            if self._row == self._rows:
                self._next_pass()
