"""The mean image of a database of Datums: Caffe's ``compute_image_mean``.

Caffe sums in float32, which drifts once a pixel's sum passes 2**24 (about 65,000 images);
the sum here is kept in float64 and only the mean is stored as float32.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..errors import DataError
from ..log import log
from ..proto import caffe_pb2
from .datum import datum_shape, key_text, parse_datum
from .lmdb_source import LMDBSource
from .record_source import RecordSource

_CHUNK = 1000  # records read at a time
_REPORT = 10000  # Caffe logs "Processed N files." this often


def open_database(path: str | os.PathLike, backend: str) -> RecordSource:
    """A reader of the database at ``path``; ``backend`` is ``lmdb`` or ``leveldb``."""
    if backend == "lmdb":
        return LMDBSource(path)
    if backend == "leveldb":
        from .leveldb_source import LevelDBSource  # optional plyvel

        return LevelDBSource(path)
    raise DataError(f"unknown database type '{backend}'; use lmdb or leveldb")


def all_records(source: RecordSource) -> Iterator[tuple[bytes, bytes]]:
    """Every record once, in key order, from the first; the last is peeked so the reader
    does not wrap around (and log a restart)."""
    source.seek(0)
    left = source.entries - 1
    while left:
        chunk = source.read(min(_CHUNK, left))
        left -= len(chunk)
        yield from chunk
    yield source.peek()


def compute_image_mean(path: str | os.PathLike, backend: str = "lmdb") -> np.ndarray:
    """The float32 mean ``(1, C, H, W)`` of every record of the database (encoded records
    decoded in their own colour kind); every record must have the first one's shape."""
    with open_database(path, backend) as source:
        key, raw = source.peek()
        first = parse_datum(raw, source.where, key)
        if caffe_pb2.Datum.FromString(raw).encoded:
            log.info("Decoding Datum")
        shape = datum_shape(first)
        total = np.zeros(shape, dtype=np.float64)
        log.info("Starting iteration")
        count = 0
        for key, raw in all_records(source):
            datum = parse_datum(raw, source.where, key)
            if datum_shape(datum) != shape:
                raise DataError(f"{source.where}: record '{key_text(key)}' has shape "
                                f"{datum_shape(datum)} but the first record has {shape}; a "
                                "mean needs one image size (convert with --resize_height "
                                "and --resize_width)")
            if datum.data:
                total += np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
            else:
                total += np.asarray(datum.float_data, dtype=np.float64).reshape(shape)
            count += 1
            if count % _REPORT == 0:
                log.info(f"Processed {count} files.")
    if count % _REPORT:
        log.info(f"Processed {count} files.")
    return (total / count).astype(np.float32)[None]


def mean_blobproto(mean: np.ndarray) -> caffe_pb2.BlobProto:
    """The ``(1, C, H, W)`` mean as Caffe writes it: legacy num/channels/height/width."""
    n, c, h, w = mean.shape
    blob = caffe_pb2.BlobProto(num=n, channels=c, height=h, width=w)
    blob.data.extend(mean.ravel().tolist())
    return blob


def channel_means(mean: np.ndarray) -> list[float]:
    """The mean of each channel, as the ``mean_value`` lines Caffe prints."""
    return [float(v) for v in mean[0].reshape(mean.shape[1], -1).mean(axis=1, dtype=np.float64)]
