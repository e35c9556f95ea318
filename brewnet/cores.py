"""Both cores for one layer: a net's pass splits its batch over threads instead of leaving the
second core to OpenBLAS.

OpenBLAS splits one GEMM over its threads, but a convolution is more than its GEMMs (im2col
copies, transposes, pooling and element-wise passes run on one core), and its narrow GEMMs
(CIFAR-10's 32 output channels) split badly: a layer gained 1.15-1.5x from a second OpenBLAS
thread. Given the batch instead, each thread runs the whole layer on its own samples with a
one-thread BLAS: CIFAR-10 quick's conv2 forward 12.9 ms with two OpenBLAS threads, 10.5 ms
split (19.0 ms on one core).

So while a net runs a pass (``sharing``), OpenBLAS is set to one thread and layers that can
split their batch ask ``parts`` for sample ranges and run them with ``run``: the caller's
thread takes the first range, pool threads the others (they wait blocked, not spinning).
OpenBLAS's thread count outside the pass is the number of threads used (``OPENBLAS_NUM_THREADS``
or threadpoolctl set it as before); it is restored when the pass ends. Weight gradients summed
over the batch add one partial sum per range, so their rounding depends on the thread count,
as PyTorch's does; each count is deterministic. ``BREWNET_BATCH_SPLIT=0`` turns it off. Only
for OpenBLAS (found among the process's libraries) and NumPy arrays, and for a batch above
one (at batch 1 OpenBLAS keeps its threads: splitting the other passes while its idle workers
spin measured slower). One pass at a time per process holds the cores: a second thread's
net meanwhile runs unsplit, its GEMMs on OpenBLAS's one thread.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np


def numpy_blas_first(paths: set[str]) -> list[str]:
    """Mapped OpenBLAS paths, the one NumPy's wheel bundles (in ``numpy.libs``) first: another
    package may map an OpenBLAS of its own, whose threads are not NumPy's."""
    return sorted(paths, key=lambda path: ("numpy" not in path, path))


@cache
def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded, found among the process's mapped files."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:  # no /proc (macOS): not identified
        return None
    ordered = numpy_blas_first(paths)
    return ctypes.CDLL(ordered[0]) if ordered else None


def blas_symbol(suffix: str) -> Any:
    """OpenBLAS's function ``openblas_<suffix>`` under any of its builds' names, or None."""
    return blas_function(f"scipy_openblas_{suffix}64_", f"openblas_{suffix}64_",
                         f"openblas_{suffix}")


def blas_text(suffix: str) -> str | None:
    """What OpenBLAS's string function ``openblas_<suffix>()`` returns (``get_corename``: the
    kernels it runs, ``get_config``: its build), or None where NumPy's BLAS is not an
    identified OpenBLAS."""
    get = blas_symbol(suffix)
    if get is None:
        return None
    get.restype = ctypes.c_char_p
    return get().decode()


def blas_function(*names: str) -> Any:
    """The first of ``names`` NumPy's OpenBLAS exports, or None (not an identified OpenBLAS,
    or none of them)."""
    lib = _openblas()
    if lib is None:
        return None
    for name in names:
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


def blas_threads() -> int | None:
    """Threads NumPy's OpenBLAS uses now; None when NumPy's BLAS is not an identified
    OpenBLAS."""
    get = blas_symbol("get_num_threads")
    return None if get is None else int(get())


def set_blas_threads(threads: int) -> None:
    """Make NumPy's OpenBLAS use ``threads`` threads from now on (nothing when it is not
    OpenBLAS)."""
    set_threads = blas_symbol("set_num_threads")
    if set_threads is not None:
        set_threads(threads)


class _Pool:
    """Threads that run one callable at a time each, handed over by a queue (blocked while
    idle: no core spent waiting)."""

    def __init__(self) -> None:
        self._inboxes: list[queue.SimpleQueue] = []

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while True:
            task, outbox = inbox.get()
            try:
                outbox.put((True, task()))
            except BaseException as error:  # handed to the caller, which raises it
                outbox.put((False, error))

    def run(self, tasks: list[Callable[[], Any]]) -> list[Any]:
        """Results of ``tasks``, the first run by the caller, the others by pool threads."""
        while len(self._inboxes) < len(tasks) - 1:
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), daemon=True,
                             name=f"brewnet-core-{len(self._inboxes) + 1}").start()
            self._inboxes.append(inbox)
        outboxes = []
        for task, inbox in zip(tasks[1:], self._inboxes, strict=False):
            outbox: queue.SimpleQueue = queue.SimpleQueue()
            inbox.put((task, outbox))
            outboxes.append(outbox)
        try:
            results = [tasks[0]()]
        finally:  # wait for the others even when the first fails: they share the arrays
            answers = [outbox.get() for outbox in outboxes]
        for ok, value in answers:
            if not ok:
                raise value
            results.append(value)
        return results


_pool = _Pool()
_lock = threading.Lock()
_owner: int | None = None  # the thread whose pass holds the cores
_threads = 1  # threads a split uses during that pass
_splitting = False  # whether the owner's ranges are running now


def _forget_threads() -> None:
    """In a forked child: the pool's threads and a pass of the parent's are not there (a
    split would wait for them forever); start afresh, with OpenBLAS's threads as they were
    before that pass."""
    global _pool, _lock, _owner, _threads, _splitting
    if _owner is not None:
        set_blas_threads(_threads)
    _pool, _lock = _Pool(), threading.Lock()
    _owner, _threads, _splitting = None, 1, False


os.register_at_fork(after_in_child=_forget_threads)


@contextmanager
def sharing(batch: int) -> Iterator[None]:
    """Run a net's pass with its layers splitting their batch over OpenBLAS's thread count
    (when that and ``batch`` are above one), OpenBLAS itself on one thread meanwhile. Nested
    passes of the same thread (a net inside a Python layer) join the outer one."""
    global _owner, _threads
    me = threading.get_ident()
    with _lock:
        enter = _owner is None and batch > 1
        if enter:
            threads = blas_threads() if os.environ.get("BREWNET_BATCH_SPLIT") != "0" else None
            enter = threads is not None and threads > 1
            if enter:
                _owner, _threads = me, threads
                set_blas_threads(1)
    try:
        yield
    finally:
        if enter:
            with _lock:
                set_blas_threads(_threads)
                _owner, _threads = None, 1


def parts(xp: Any, n: int, minimum: int = 1) -> list[tuple[int, int]]:
    """Contiguous ranges covering ``range(n)``: one per thread while the calling thread's pass
    shares the cores (NumPy arrays, at least ``minimum`` items a range), else ``[(0, n)]``."""
    if _owner != threading.get_ident() or _splitting or xp is not np:
        return [(0, n)]
    count = max(1, min(_threads, n // max(1, minimum)))
    bounds = [n * k // count for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def run(function: Callable[[int, int], Any], ranges: list[tuple[int, int]]) -> list[Any]:
    """``function(start, stop)`` for each range, on the shared cores; the results in order.
    What the ranges call runs whole (``parts`` gives one range meanwhile)."""
    global _splitting
    if len(ranges) == 1:
        return [function(*ranges[0])]
    _splitting = True
    try:
        return _pool.run([lambda a=a, b=b: function(a, b) for a, b in ranges])
    finally:
        _splitting = False


def split(xp: Any, n: int, function: Callable[[int, int], Any], minimum: int = 1) -> list[Any]:
    """``run(function, parts(xp, n, minimum))``."""
    return run(function, parts(xp, n, minimum))


# Values of an element-wise pass a thread takes at least: below it a hand-over (~50 us)
# costs more than the half pass saves.
FLAT_MINIMUM = 1 << 17


def flat(xp: Any, size: int, function: Callable[[int, int], Any]) -> None:
    """``function(start, stop)`` over ranges of an element-wise pass over ``size`` values of
    flat arrays, split when each range gets at least ``FLAT_MINIMUM``."""
    split(xp, size, function, FLAT_MINIMUM)
