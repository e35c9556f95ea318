"""The images of one batch decoded and transformed by several threads at once.

Threads, not processes: Pillow releases the GIL while it decodes and NumPy while it crops and
converts, which is nearly all of an image's time, and threads write straight into the batch's
buffer with nothing to pickle or copy back. The outcome is that of a serial loop over the
batch's parts (a few consecutive images each): each part lands at its own place, whichever
thread took it, and of the failures the one at the lowest index is raised (the record a
serial loop meets first). A batch's content therefore does not depend on the number of
threads.

``BREWNET_DATA_WORKERS`` sets the number of threads per data layer (default: every core this
process may run on); 1 decodes in the prefetch thread alone, as before.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable

from ..errors import DataError

ENV = "BREWNET_DATA_WORKERS"


def worker_count() -> int:
    """The number of decoding threads: ``BREWNET_DATA_WORKERS``, else the usable cores."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise DataError(f"{ENV}={text!r} is not a positive number of data workers")
    return count


class Workers:
    """``count`` threads for a batch's parts: the calling thread and ``count - 1`` daemon
    threads, started on first use and ended by ``close``."""

    def __init__(self, count: int, name: str):
        self.count = max(1, int(count))
        self._name = name
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def _serve(self) -> None:
        while (task := self._tasks.get()) is not None:
            task()

    def run(self, work: Callable[[int], None], n: int, stop: threading.Event,
            meanwhile: Callable[[], None] | None = None) -> None:
        """Call ``work(i)`` once for each i in ``range(n)``, spread over the threads, and
        return when all are done; raise the failure of the lowest i. With ``stop`` set the
        threads take no further part and ``run`` raises a DataError.

        ``meanwhile`` is called by the calling thread once no part is left to take, while the
        helpers finish theirs: serial work that would otherwise leave their cores idle (the
        feed reads its next batch's records there)."""
        taken = itertools.count()  # next() is atomic: each index goes to one thread
        failures: dict[int, BaseException] = {}
        finished = threading.Semaphore(0)

        def loop() -> None:
            # Failures are looked at before taking an index, never after: an index taken
            # is always worked, so every index below a failure is done when run returns.
            while not failures and not stop.is_set():
                i = next(taken)
                if i >= n:
                    return
                try:
                    work(i)
                except BaseException as e:  # raised by run() in index order
                    failures[i] = e

        def helper() -> None:
            try:
                loop()
            finally:
                finished.release()

        helpers = min(self.count, n) - 1
        if stop.is_set():  # never start threads for a feed being closed
            helpers = 0
        if helpers > 0 and not self._threads:
            self._threads = [threading.Thread(target=self._serve, name=f"{self._name}-{k}",
                                              daemon=True) for k in range(1, self.count)]
            for thread in self._threads:
                thread.start()
        for _ in range(helpers):
            self._tasks.put(helper)
        try:
            loop()
            if meanwhile is not None and not stop.is_set():
                meanwhile()
        finally:
            for _ in range(helpers):
                finished.acquire()  # each helper returns within one part of a failure or stop
        if failures:
            raise failures[min(failures)]
        if stop.is_set():
            raise DataError("the data feed was closed while it decoded a batch")

    def close(self, timeout: float) -> bool:
        """End the threads, waiting up to ``timeout`` s in all (a busy one ends after its
        part); False if one is still running."""
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        running = any(thread.is_alive() for thread in self._threads)
        self._threads = []
        return not running
