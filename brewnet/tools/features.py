"""Features of a trained net written to databases: Caffe's ``extract_features``.

Each forward pass adds one Datum per image for every named blob, its values in
``float_data`` and its shape in Caffe's legacy channels/height/width, keyed ``%010d`` by the
image's index. One database per blob; each is written by its own thread as the batches come,
built beside its final name and renamed in only when every batch is done.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..errors import BrewnetError, DataError
from ..log import log
from ..proto import caffe_pb2

_DONE, _ABORT = object(), object()
_REPORT = 1000  # Caffe logs each 1000 images per blob


def feature_datum(values: np.ndarray) -> caffe_pb2.Datum:
    """One image's features ``([C[, H[, W]]])`` as Caffe stores them (its legacy channels,
    height and width: 1 for each axis the blob lacks)."""
    dims = (*values.shape, 1, 1, 1)[:3]
    datum = caffe_pb2.Datum(channels=dims[0], height=dims[1], width=dims[2])
    datum.float_data.extend(np.asarray(values, dtype=np.float32).ravel().tolist())
    return datum


def _queued(items: queue.Queue) -> Iterator[tuple[str, bytes]]:
    """The records put on ``items`` until done; an abort fails the write (nothing renamed in)."""
    while True:
        item = items.get()
        if item is _DONE:
            return
        if item is _ABORT:
            raise DataError("feature extraction stopped before its last batch")
        yield item


def _writer(write: Callable, path: str, items: queue.Queue, errors: list) -> threading.Thread:
    def run() -> None:
        try:
            write(path, _queued(items))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=run, name=f"write {path}", daemon=True)
    thread.start()
    return thread


def _finish(queues: list[queue.Queue], threads: list[threading.Thread], last: object) -> None:
    """End every writer with ``last`` (done: rename the database in; abort: discard it)."""
    for items in queues:
        items.put(last)
    for thread in threads:
        thread.join()


def extract_features(net: Any, blobs: list[str], paths: list[str], batches: int,
                     write: Callable) -> list[int]:
    """Run ``batches`` forward passes of ``net``, writing blob ``blobs[i]`` of every image to
    the database ``paths[i]`` through ``write(path, records)``; returns the records written
    per blob (each blob counts its own images, as Caffe's tool does)."""
    if len(blobs) != len(paths):
        raise BrewnetError(f"{len(blobs)} blob name(s) but {len(paths)} database name(s); give "
                           "one database per feature blob")
    for name in blobs:
        if name not in net.blobs:
            raise BrewnetError(f"Unknown feature blob name {name} in the network; its blobs: "
                               f"{', '.join(net.blobs)}")
    queues = [queue.Queue() for _ in paths]
    errors: list[BaseException] = []
    threads = [_writer(write, path, items, errors) for path, items in zip(paths, queues,
                                                                          strict=True)]
    counts = [0] * len(blobs)
    log.info("Extracting Features")
    try:
        for _ in range(batches):
            net.forward()
            if errors:
                break
            for i, (name, items) in enumerate(zip(blobs, queues, strict=True)):
                data = to_numpy(net.blobs[name].data)
                if data.ndim == 0:  # a scalar blob (a loss) counts as one image, as in Caffe
                    data = data.reshape(1)
                for values in data:
                    items.put((f"{counts[i]:010d}", feature_datum(values)))
                    counts[i] += 1
                    if counts[i] % _REPORT == 0:
                        log.info(f"Extracted features of {counts[i]} query images for "
                                 f"feature blob {name}")
    except BaseException:
        _finish(queues, threads, _ABORT)
        raise
    _finish(queues, threads, _ABORT if errors else _DONE)
    if errors:
        raise errors[0]
    for name, count in zip(blobs, counts, strict=True):
        if count % _REPORT:
            log.info(f"Extracted features of {count} query images for feature blob {name}")
    log.info("Successfully extracted the features!")
    return counts
