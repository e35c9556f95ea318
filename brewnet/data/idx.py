"""The IDX file format of the MNIST distribution (LeCun et al.), raw or gzipped.

Header: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then each
dimension as a big-endian uint32; big-endian values follow. MNIST's "magic number" is the
first four bytes read as one integer: 2051 for image files, 2049 for label files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write

IMAGES_MAGIC = 2051  # uint8, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 2049  # uint8, 1 dimension (n,)

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in _TYPES.items()}


def _read(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"IDX file '{path}' cannot be read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"IDX file '{path}' is a damaged or truncated gzip file ({e})") \
                from None
    return raw


def load_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file; ``magic`` (e.g. 2051) is checked when given."""
    path = Path(path)
    raw = _read(path)
    if len(raw) < 4:
        raise DataError(f"IDX file '{path}' is truncated: {len(raw)} bytes, shorter than the "
                        "4-byte magic number")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise DataError(f"IDX file '{path}' has magic number {found}, expected {magic}; is it "
                        "the right file (images 2051, labels 2049)?")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or code not in _TYPES or ndim == 0:
        raise DataError(f"IDX file '{path}' does not start with an IDX header (magic number "
                        f"{found})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file '{path}' is truncated: {len(raw)} bytes, but its "
                        f"{ndim}-dimensional header needs {header}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[code]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"IDX file '{path}' is {what}: {len(raw)} bytes, expected {expected} "
                        f"for shape {dims}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (atomically), gzipped when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("=").str[1:])
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    path = Path(path)
    atomic_write(path, gzip.compress(body) if path.suffix == ".gz" else body)
