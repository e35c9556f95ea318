"""Numbered, prefetched batches of transformed images: what the Data and ImageData layers
consume.

Batch k holds records ``start + k*batch_size ...`` (modulo the record count, key order) and
its random crops/mirrors come from a Generator seeded with ``(seed, k)``. A batch's content
therefore depends only on its number: seeking to batch k (resuming a run) continues exactly
where an uninterrupted run would be, whatever had been prefetched.

Sharded (``shard=(rank, count)``, data-parallel training): records are dealt round-robin,
record i to rank i mod count (Caffe's DataLayer::Skip), so batch k of every rank together
holds the records one process reads with a batch ``count`` times larger; a rank reads the
others' records without decoding them. Its crops and mirrors come from ``(seed, k, rank)``.

A prefetch thread reads the items of batch k in order (a database reads sequentially); its
images are then decoded and transformed by ``workers`` threads (``workers.py``) straight into
the batch's buffer. The random crops and mirrors of a batch are drawn before any image is
transformed, so neither the thread count nor the order the threads finish in changes a batch.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import DataError
from ..log import log
from .datum import record_image, shape_mismatch
from .leveldb_source import LevelDBSource
from .lmdb_source import LMDBSource
from .prefetch import Prefetcher
from .transform import DataTransformer
from .workers import Workers, worker_count

_CLOSE_TIMEOUT_S = 10.0  # how long close/seek wait for the prefetch thread
_PARTS_PER_WORKER = 8  # parts a batch is cut into per worker: small ones shorten the tail
_PART_VALUES = 1 << 18  # the least pixel values a worker takes at once (a 256x256x3 image: 3/4)


@dataclass
class Batch:
    """One batch ready for the net: data (N, C, H, W) and label (N,), both float32."""

    index: int
    data: np.ndarray
    label: np.ndarray


@dataclass
class _Head:
    """What batch ``index`` starts from: its items and its first image's pixels and label,
    or the error that reading or decoding them raised (the batch's failure)."""

    index: int
    items: Sequence[Any] = ()
    first: tuple[np.ndarray, float] | None = None
    error: BaseException | None = None


class BatchFeed(ABC):
    """Makes batch k, k+1, ... ahead of the consumer: items read in order by a background
    thread, their images decoded and transformed by ``workers`` threads (default
    ``BREWNET_DATA_WORKERS``, else every core). A subclass says what an item is.

    A decoding failure outranks a shape mismatch (Caffe's Data layer decodes the whole batch
    before reshaping), unless ``shapes_in_order``: then the first of either kind is raised
    (ImageData checks each image as it reads it)."""

    shapes_in_order: ClassVar[bool] = False

    def __init__(self, transformer: DataTransformer, batch_size: int, where: str,
                 prefetch: int = 4, seed: int = 0, name: str = "brewnet-data",
                 workers: int | None = None):
        self.transformer = transformer
        self.batch_size = int(batch_size)
        self.where = where
        self.depth = max(1, int(prefetch))
        self.seed = int(seed)
        self.name = name
        self.next_batch = 0  # number of the batch get() returns next
        self._workers = Workers(worker_count() if workers is None else workers, name)
        self._stop = threading.Event()  # asks the workers to leave the batch they are on
        # Buffers handed back by the consumer, reused so steady state allocates nothing.
        self._free: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._handed_out: Batch | None = None  # the batch whose arrays the tops hold now
        self._prefetcher: Prefetcher[Batch] | None = None
        self._ahead: _Head | None = None  # the next batch's head, read while a batch finished
        self._closed = False

    @abstractmethod
    def _reposition(self) -> None:
        """Get ready to read batch ``next_batch`` (before the prefetch thread starts)."""

    @abstractmethod
    def _items(self, index: int) -> Sequence[Any]:
        """The items of batch ``index``; called in the prefetch thread, in batch order."""

    @abstractmethod
    def _decode(self, item: Any) -> tuple[np.ndarray, float]:
        """An item's (C, H, W) pixels and label; called from any worker thread."""

    @abstractmethod
    def _mismatch(self, item: Any, shape: tuple[int, ...],
                  first: tuple[int, ...]) -> Exception:
        """The error for an item whose pixels' shape differs from its batch's first item's."""

    @abstractmethod
    def _stream(self, index: int) -> tuple[int, ...]:
        """The seed of batch ``index``'s random crops and mirrors."""

    @abstractmethod
    def _close_source(self) -> None:
        """Let go of what the items are read from."""

    @property
    def workers(self) -> int:
        return self._workers.count

    def _start(self, lazy: bool = False) -> None:
        self._reposition()
        self._ahead = None  # read from the old position
        self._stop.clear()
        self._prefetcher = Prefetcher(self._produce, self.depth, start=self.next_batch,
                                      name=self.name, lazy=lazy)

    def _buffer(self, shape: tuple[int, ...]) -> Batch:
        try:
            batch = self._free.get_nowait()
        except queue.Empty:
            batch = Batch(-1, np.empty(0, np.float32), np.empty(0, np.float32))
        if batch.data.shape != shape:
            batch.data = np.empty(shape, dtype=np.float32)
            batch.label = np.empty(shape[:1], dtype=np.float32)
        return batch

    def _head(self, index: int) -> _Head:
        """Batch ``index``'s items and first image; an error is kept for its batch to raise."""
        try:
            items = self._items(index)
            return _Head(index, items, self._decode(items[0]))
        except BaseException as e:  # batch index's failure, raised when it is produced
            return _Head(index, error=e)

    def _read_ahead(self, index: int) -> None:
        """Read the head of batch ``index`` now; called by the prefetch thread while the
        workers finish the batch before it."""
        self._ahead = self._head(index)

    def _produce(self, index: int) -> Batch:
        """Batch ``index``; runs in the prefetch thread. The first item gives the batch its
        shape and the crops their range; then the workers decode and transform the items, a
        few consecutive ones at a time, while the prefetch thread, its parts done, reads the
        next batch's head (reading is serial: done between batches it would idle the other
        workers). Errors are raised as a serial loop meets them (see ``shapes_in_order``)."""
        head = self._ahead if self._ahead is not None and self._ahead.index == index \
            else self._head(index)
        self._ahead = None
        if head.error is not None:
            raise head.error
        items = head.items
        first, first_label = head.first
        n = len(items)
        batch = self._buffer((n, *self.transformer.output_shape(first.shape)))
        rng = np.random.default_rng(self._stream(index)) if self.transformer.random else None
        crops = self.transformer.draw(n, first.shape[1], first.shape[2], rng)
        mismatches: dict[int, Exception] = {}
        # Workers take parts of a few consecutive images, up to 8 parts each for balance, of
        # at least _PART_VALUES pixel values: smaller images (MNIST) are not worth a hand-over
        # between threads. A part's images sharing one window, 4 parts' worth of values at
        # most, get one transform; others are transformed as soon as decoded, so each is
        # freed and its memory reused for the next (keeping large images alive made the
        # allocator return and fault in their pages every time: 36 page faults an image).
        chunk = max(-(-n // (_PARTS_PER_WORKER * self.workers)), -(-_PART_VALUES // first.size))
        together = crops.uniform and chunk * first.size <= 4 * _PART_VALUES

        def work(part: int) -> None:
            start, stop = part * chunk, min(n, (part + 1) * chunk)
            images, labels = [], []
            for i in range(start, stop):
                pixels, label = (first, first_label) if i == 0 else self._decode(items[i])
                if pixels.shape != first.shape:
                    mismatch = self._mismatch(items[i], pixels.shape, first.shape)
                    if self.shapes_in_order:
                        raise mismatch
                    mismatches[i] = mismatch
                    continue
                labels.append(label)
                if together:
                    images.append(pixels)
                else:
                    self.transformer.transform_image(pixels, batch.data[i], crops, i)
            if len(labels) == stop - start:
                if together:
                    self.transformer.transform(images, batch.data[start:stop],
                                               crops.part(start, stop))
                batch.label[start:stop] = labels

        try:
            self._workers.run(work, -(-n // chunk), self._stop,
                              lambda: self._read_ahead(index + 1))
            if mismatches:
                raise mismatches[min(mismatches)]
        except BaseException:
            self._free.put(batch)
            raise
        batch.index = index
        return batch

    def get(self) -> Batch:
        """The next batch, for ``hand_out`` (or back with ``release``). A batch that failed
        fails again, the same way, at each further ``get``."""
        if self._closed:
            raise DataError(f"{self.where}: the data feed is closed")
        if self._prefetcher is None:  # the last batch failed: make it again
            self._start()
        try:
            batch = self._prefetcher.get()
        except BaseException:
            # Keep neither the failed prefetcher (its error's traceback holds the consumer's
            # frames, which would keep the layer, and so this feed, from being collected)
            # nor idle workers; the prefetch thread has ended with the failure.
            self._stop_thread()
            self._workers.close(_CLOSE_TIMEOUT_S)
            raise
        self.next_batch = batch.index + 1
        return batch

    def release(self, batch: Batch) -> None:
        self._free.put(batch)

    def hand_out(self, batch: Batch, top: list[Any]) -> None:
        """Give ``batch`` to a data layer's tops (data, then label if there is a second top;
        each reshaped to its array). NumPy tops take the batch's arrays themselves, as
        Caffe's prefetching layers hand their buffers over: the batch comes back for reuse
        at the next hand-out, so an array taken from such a top is refilled after the next
        forward (the net reads its blobs afresh each time). Other tops (a GPU's) get a copy
        and the batch comes back at once. The copy was a tenth of the CPU time an image costs
        with JPEG records (a batch of 64 at 227x227 is 40 MB), time the decoding workers
        lost."""
        adopt = all(blob.xp is np for blob in top)
        try:
            for blob, array in zip(top, (batch.data, batch.label), strict=False):
                blob.reshape(array.shape)
                if adopt:
                    blob.adopt_data(array)
                else:
                    blob.data[...] = blob.xp.asarray(array)
        except BaseException:
            self.release(batch)
            raise
        if adopt:
            batch, self._handed_out = self._handed_out, batch
        if batch is not None:
            self.release(batch)

    def seek(self, batch_index: int) -> None:
        """Make batch ``batch_index`` the next one, dropping whatever was prefetched."""
        if self._closed:
            raise DataError(f"{self.where}: the data feed is closed")
        if not self._stop_thread():
            raise DataError(f"{self.where}: the prefetch thread did not stop within "
                            f"{_CLOSE_TIMEOUT_S:g} s, so the data cannot be repositioned")
        self.next_batch = int(batch_index)
        self._start()

    def _stop_thread(self) -> bool:
        """Stop the prefetch thread and its workers; False if it did not stop in time."""
        if self._prefetcher is None:
            return True
        self._stop.set()
        self._prefetcher.close(_CLOSE_TIMEOUT_S)
        stopped = not self._prefetcher.alive
        self._prefetcher = None
        return stopped

    def close(self) -> None:
        """Stop the threads, then close the source. Never raises: it runs from ``finally``
        blocks and finalizers, where an error would hide the one being handled."""
        if self._closed:
            return
        self._closed = True
        stopped = self._stop_thread()
        if not self._workers.close(_CLOSE_TIMEOUT_S) or not stopped:
            log.warning(f"{self.where}: the prefetch thread did not stop within "
                        f"{_CLOSE_TIMEOUT_S:g} s; closing the database anyway")
        try:
            self._close_source()
        except Exception as e:  # reported, never raised from cleanup
            log.warning(f"{self.where}: closing failed: {e}")


class DatumFeed(BatchFeed):
    """Batches of the Datum records of ``source`` (an LMDB or LevelDB), in key order."""

    def __init__(self, source: LMDBSource | LevelDBSource, transformer: DataTransformer,
                 batch_size: int, prefetch: int = 4, seed: int = 0, start_record: int = 0,
                 name: str = "brewnet-data", shard: tuple[int, int] = (0, 1),
                 workers: int | None = None):
        super().__init__(transformer, batch_size, source.where, prefetch=prefetch, seed=seed,
                         name=name, workers=workers)
        self.source = source
        self.start_record = int(start_record)
        self.rank, self.ranks = int(shard[0]), int(shard[1])
        # Lazy: a net that is only set up (drawn, checked) reads no batch, just the record
        # its Data layer peeked for the shapes; reading starts with the first get or seek.
        self._start(lazy=True)

    def _reposition(self) -> None:
        self.source.seek(self.start_record + self.next_batch * self.batch_size * self.ranks)

    def _items(self, index: int) -> Sequence[tuple[bytes, bytes]]:
        return self.source.read(self.batch_size * self.ranks)[self.rank::self.ranks]

    def _decode(self, item: tuple[bytes, bytes]) -> tuple[np.ndarray, float]:
        return record_image(item[1], self.where, item[0])

    def _mismatch(self, item: tuple[bytes, bytes], shape: tuple[int, ...],
                  first: tuple[int, ...]) -> Exception:
        return shape_mismatch(self.where, item[0], shape, first)

    def _stream(self, index: int) -> tuple[int, ...]:
        return (self.seed, index) if self.ranks == 1 else (self.seed, index, self.rank)

    def _close_source(self) -> None:
        self.source.close()
