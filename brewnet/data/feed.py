"""Numbered, prefetched batches of transformed Datum records: what a Data layer consumes.

Batch k holds records ``start + k*batch_size ...`` (modulo the record count, key order) and
its random crops/mirrors come from a Generator seeded with ``(seed, k)``. A batch's content
therefore depends only on its number: seeking to batch k (resuming a run) continues exactly
where an uninterrupted run would be, whatever had been prefetched.

Sharded (``shard=(rank, count)``, data-parallel training): records are dealt round-robin,
record i to rank i mod count (Caffe's DataLayer::Skip), so batch k of every rank together
holds the records one process reads with a batch ``count`` times larger; a rank reads the
others' records without decoding them. Its crops and mirrors come from ``(seed, k, rank)``.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..log import log
from .datum import decode_batch
from .leveldb_source import LevelDBSource
from .lmdb_source import LMDBSource
from .prefetch import Prefetcher
from .transform import DataTransformer

_CLOSE_TIMEOUT_S = 10.0  # how long close/seek wait for the prefetch thread


@dataclass
class Batch:
    """One batch ready for the net: data (N, C, H, W) and label (N,), both float32."""

    index: int
    data: np.ndarray
    label: np.ndarray


class DatumFeed:
    """Reads, decodes and transforms batches from ``source`` in a background thread."""

    def __init__(self, source: LMDBSource | LevelDBSource, transformer: DataTransformer,
                 batch_size: int, prefetch: int = 4, seed: int = 0, start_record: int = 0,
                 name: str = "brewnet-data", shard: tuple[int, int] = (0, 1)):
        self.source = source
        self.transformer = transformer
        self.batch_size = int(batch_size)
        self.depth = max(1, int(prefetch))
        self.seed = int(seed)
        self.start_record = int(start_record)
        self.name = name
        self.rank, self.ranks = int(shard[0]), int(shard[1])
        self.next_batch = 0  # number of the batch get() returns next
        # Buffers handed back by the consumer, reused so steady state allocates nothing.
        self._free: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._prefetcher: Prefetcher[Batch] | None = None
        self._closed = False
        # Lazy: a net that is only set up (drawn, checked) reads no batch, just the record
        # its Data layer peeked for the shapes; reading starts with the first get or seek.
        self._start(lazy=True)

    def _start(self, lazy: bool = False) -> None:
        self.source.seek(self.start_record + self.next_batch * self.batch_size * self.ranks)
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

    def _produce(self, index: int) -> Batch:
        """Batch ``index``; runs in the prefetch thread, which reads the source in order."""
        records = self.source.read(self.batch_size * self.ranks)[self.rank::self.ranks]
        data, labels = decode_batch(records, self.source.where)
        shape = (data.shape[0], *self.transformer.output_shape(data.shape[1:]))
        batch = self._buffer(shape)
        stream = (self.seed, index) if self.ranks == 1 else (self.seed, index, self.rank)
        rng = np.random.default_rng(stream) if self.transformer.random else None
        self.transformer(data, batch.data, rng)
        batch.label[...] = labels
        batch.index = index
        return batch

    def get(self) -> Batch:
        """The next batch; hand it back with ``release`` once copied."""
        if self._closed or self._prefetcher is None:
            raise DataError(f"{self.source.where}: the data feed is closed")
        batch = self._prefetcher.get()
        self.next_batch = batch.index + 1
        return batch

    def release(self, batch: Batch) -> None:
        self._free.put(batch)

    def seek(self, batch_index: int) -> None:
        """Make batch ``batch_index`` the next one, dropping whatever was prefetched."""
        if self._closed:
            raise DataError(f"{self.source.where}: the data feed is closed")
        if not self._stop_thread():
            raise DataError(f"{self.source.where}: the prefetch thread did not stop within "
                            f"{_CLOSE_TIMEOUT_S:g} s, so the data cannot be repositioned")
        self.next_batch = int(batch_index)
        self._start()

    def _stop_thread(self) -> bool:
        """Stop the prefetch thread; False if it did not stop within the timeout."""
        if self._prefetcher is None:
            return True
        self._prefetcher.close(_CLOSE_TIMEOUT_S)
        stopped = not self._prefetcher.alive
        self._prefetcher = None
        return stopped

    def close(self) -> None:
        """Stop the thread, then close the database. Never raises: it runs from ``finally``
        blocks and finalizers, where an error would hide the one being handled."""
        if self._closed:
            return
        self._closed = True
        if not self._stop_thread():
            log.warning(f"{self.source.where}: the prefetch thread did not stop within "
                        f"{_CLOSE_TIMEOUT_S:g} s; closing the database anyway")
        try:
            self.source.close()
        except Exception as e:  # reported, never raised from cleanup
            log.warning(f"{self.source.where}: closing failed: {e}")
