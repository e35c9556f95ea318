"""Features of a trained net written to databases: Caffe's ``extract_features``.

Each forward pass adds one Datum per image for every named blob, its values in
``float_data`` and its shape in Caffe's legacy channels/height/width, keyed ``%010d`` by the
image's index. One database per blob; each is written by its own thread as the batches come,
built beside its final name and renamed in only when every database has all its records.
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

_END, _COMMIT, _ABORT = object(), object(), object()
_REPORT = 1000  # Caffe logs each 1000 images per blob


def feature_datum(values: np.ndarray) -> caffe_pb2.Datum:
    """One image's features ``([C[, H[, W]]])`` as Caffe stores them (its legacy channels,
    height and width: 1 for each axis the blob lacks)."""
    dims = (*values.shape, 1, 1, 1)[:3]
    datum = caffe_pb2.Datum(channels=dims[0], height=dims[1], width=dims[2])
    datum.float_data.extend(np.asarray(values, dtype=np.float32).ravel().tolist())
    return datum


class _Writer:
    """One database, written by its own thread from the records put on ``items``. At the
    end it waits for a verdict, so no database is renamed in until every one has all its
    records and none has failed."""

    def __init__(self, write: Callable, path: str, errors: list[BaseException]):
        self.items: queue.Queue = queue.Queue()
        self.settled = threading.Event()  # has every record, or has failed
        self.thread = threading.Thread(target=self._run, args=(write, path, errors),
                                       name=f"write {path}", daemon=True)
        self.thread.start()

    def _records(self) -> Iterator[tuple[str, caffe_pb2.Datum]]:
        while True:
            item = self.items.get()
            if item is _END:
                self.settled.set()
                item = self.items.get()
                if item is _COMMIT:
                    return
            if item is _ABORT:
                raise DataError("feature extraction stopped before its last batch")
            yield item

    def _run(self, write: Callable, path: str, errors: list[BaseException]) -> None:
        try:
            write(path, self._records())
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            self.settled.set()


def _finish(writers: list[_Writer], errors: list[BaseException], failed: bool) -> None:
    """Commit every database once all have their records and none failed; else discard all."""
    if not failed:
        for writer in writers:
            writer.items.put(_END)
        for writer in writers:
            writer.settled.wait()
    verdict = _ABORT if failed or errors else _COMMIT
    for writer in writers:
        writer.items.put(verdict)
    for writer in writers:
        writer.thread.join()


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
    errors: list[BaseException] = []
    writers = [_Writer(write, path, errors) for path in paths]
    counts = [0] * len(blobs)
    log.info("Extracting Features")
    try:
        for _ in range(batches):
            net.forward()
            if errors:
                break
            for i, (name, writer) in enumerate(zip(blobs, writers, strict=True)):
                data = to_numpy(net.blobs[name].data)
                if data.ndim == 0:  # a scalar blob (a loss) counts as one image, as in Caffe
                    data = data.reshape(1)
                for values in data:
                    writer.items.put((f"{counts[i]:010d}", feature_datum(values)))
                    counts[i] += 1
                    if counts[i] % _REPORT == 0:
                        log.info(f"Extracted features of {counts[i]} query images for "
                                 f"feature blob {name}")
    except BaseException:
        _finish(writers, errors, failed=True)
        raise
    _finish(writers, errors, failed=False)
    if errors:
        raise errors[0]
    for name, count in zip(blobs, counts, strict=True):
        if count % _REPORT:
            log.info(f"Extracted features of {count} query images for feature blob {name}")
    log.info("Successfully extracted the features!")
    return counts
