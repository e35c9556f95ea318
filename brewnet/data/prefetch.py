"""A background thread that computes items ahead of the consumer, in order (Caffe's
BasePrefetchingDataLayer with its queue of ``prefetch`` batches).

One producer thread fills a bounded queue with ``produce(0), produce(1), ...``: the order is
fixed, so results do not depend on timing. An exception in the thread is handed to the
consumer and raised from ``get``. The thread is a daemon and ``close`` stops it promptly.
With ``lazy`` it produces nothing until the first ``get``, so an object that is set up but
never run (a net compiled only for its shapes) reads nothing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import DataError

T = TypeVar("T")

_POLL_S = 0.05  # how often a blocked thread looks for a stop request


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher(Generic[T]):
    """Runs ``produce(i)`` for i = ``start``, ``start`` + 1, ... in a daemon thread, keeping up
    to ``depth`` finished items waiting; ``get`` returns them in that order. With ``lazy`` the
    thread waits for the first ``get`` before producing anything."""

    def __init__(self, produce: Callable[[int], T], depth: int = 4, start: int = 0,
                 name: str = "brewnet-prefetch", lazy: bool = False):
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._wanted = threading.Event()  # set by the first get (or close), at once unless lazy
        if not lazy:
            self._wanted.set()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(int(start),), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, index: int) -> None:
        self._wanted.wait()
        while not self._stop.is_set():
            try:
                item: object = self._produce(index)
            except BaseException as e:  # handed to the consumer, raised from get()
                item = _Failure(e)
            if not self._put(item) or isinstance(item, _Failure):
                return
            index += 1

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> T:
        """The next item; re-raises the producer's exception once it has failed."""
        if self._failure is not None:
            raise self._failure
        if self._stop.is_set():
            raise DataError("the prefetch thread was closed")
        self._wanted.set()
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if self._stop.is_set():
                    raise DataError("the prefetch thread was closed") from None
                if not self._thread.is_alive() and self._queue.empty():
                    raise DataError("the prefetch thread stopped unexpectedly") from None
        if isinstance(item, _Failure):
            self._failure = item.error
            raise item.error
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it (unless called from the thread itself)."""
        self._stop.set()
        self._wanted.set()  # wake a lazy thread still waiting for its first get, to end
        self._drain()  # unblock a producer waiting on a full queue
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._drain()  # drop what it may have put meanwhile; nothing holds on to the items

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
