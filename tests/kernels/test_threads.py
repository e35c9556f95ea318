"""threads.split: the work cut into one range per BLAS thread, ranges disjoint and covering,
helpers' errors raised in the caller, and serial when the BLAS runs one thread or the work
is small; the count is OpenBLAS's own at the time of the call."""

import os
import signal
import threading

import pytest

from brewnet.kernels import threads


def record(calls: list, lock: threading.Lock):
    def kernel(tag, lo, hi):
        with lock:
            calls.append((tag, lo, hi, threading.get_ident()))
    return kernel


@pytest.mark.parametrize(("blas", "size", "extent", "ranges"), [
    (1, 10**6, 8, [(0, 8)]),
    (2, 10**6, 8, [(0, 4), (4, 8)]),
    (3, 10**6, 8, [(0, 2), (2, 5), (5, 8)]),
    (4, 10**6, 2, [(0, 1), (1, 2)]),  # never more ranges than units
    (2, 100, 8, [(0, 8)]),  # small work stays in the calling thread
])
def test_ranges_cover_the_extent_once(monkeypatch, blas, size, extent, ranges):
    """One range per thread, in order, together exactly [0, extent); the first runs in the
    calling thread."""
    monkeypatch.setattr(threads, "blas_threads", lambda: blas)
    calls, lock = [], threading.Lock()
    threads.split(record(calls, lock), ("t",), extent, size)
    assert sorted((lo, hi) for _, lo, hi, _ in calls) == ranges
    first = [ident for _, lo, _, ident in calls if lo == 0]
    assert first == [threading.get_ident()]


def test_a_helper_error_reaches_the_caller(monkeypatch):
    """An exception in a helper's range is raised by split, after every range finished; the
    helper then serves the next call."""
    monkeypatch.setattr(threads, "blas_threads", lambda: 2)

    def kernel(lo, hi):
        if lo > 0:
            raise ValueError("second range")

    with pytest.raises(ValueError, match="second range"):
        threads.split(kernel, (), 4, 10**6)
    calls, lock = [], threading.Lock()
    threads.split(record(calls, lock), ("again",), 4, 10**6)
    assert len(calls) == 2


def test_count_follows_openblas():
    """blas_threads reads OpenBLAS's current count, so setting it changes the cut."""
    get, put = threads.blas_symbol("get_num_threads"), threads.blas_symbol("set_num_threads")
    if get is None or put is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    before = get()
    try:
        put(1)
        assert threads.blas_threads() == 1 and threads.threads_for(10**6) == 1
        put(2)
        assert threads.blas_threads() == 2 and threads.threads_for(10**6) == 2
        assert threads.threads_for(threads.MIN_SPLIT - 1) == 1
    finally:
        put(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_helpers(monkeypatch):
    """The parent's helper threads do not exist in a forked child; split there starts new
    ones instead of waiting for ones that will never answer."""
    monkeypatch.setattr(threads, "blas_threads", lambda: 2)
    calls, lock = [], threading.Lock()
    threads.split(record(calls, lock), ("parent",), 4, 10**6)  # the parent has a helper
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if both ranges ran, killed if it hangs
        signal.alarm(20)
        done = []
        threads.split(lambda lo, hi: done.append((lo, hi)), (), 4, 10**6)
        os._exit(0 if sorted(done) == [(0, 2), (2, 4)] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
