"""Prefetcher: ordered, bounded, error-propagating, and stoppable background production."""

import threading
import time

import pytest

from brewnet.data.prefetch import Prefetcher
from brewnet.errors import DataError


def test_items_arrive_in_order_whatever_the_timing():
    """Items come out as produce(start), produce(start+1), ... even with uneven work times."""
    delays = [0.004, 0, 0.002, 0, 0, 0.003] * 5

    def produce(i):
        time.sleep(delays[i % len(delays)])
        return i * i

    p = Prefetcher(produce, depth=3, start=4)
    try:
        assert [p.get() for _ in range(20)] == [i * i for i in range(4, 24)]
    finally:
        p.close()


def _wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the prefetch thread made no progress"
        time.sleep(0.005)


def test_queue_is_bounded():
    """The thread runs at most ``depth`` items (plus the one it is handing over) ahead: once
    the queue is full it produces exactly one more and then waits for the consumer."""
    calls = []
    p = Prefetcher(lambda i: calls.append(i) or i, depth=2)
    try:
        _wait_for(lambda: p._queue.full() and len(calls) == 3)
        time.sleep(0.1)  # room to run ahead, were it unbounded
        assert calls == [0, 1, 2]
        assert p.get() == 0
        _wait_for(lambda: p._queue.full() and len(calls) == 4)
        time.sleep(0.1)
        assert calls == [0, 1, 2, 3]
    finally:
        p.close()


def test_error_is_raised_in_the_consumer():
    """An exception in produce reaches get() after the items before it, and stays raised."""
    def produce(i):
        if i == 2:
            raise DataError("record 2 is broken")
        return i

    p = Prefetcher(produce, depth=4)
    try:
        assert p.get() == 0 and p.get() == 1
        with pytest.raises(DataError, match="record 2 is broken"):
            p.get()
        with pytest.raises(DataError, match="record 2 is broken"):
            p.get()
        time.sleep(0.05)
        assert not p.alive  # the thread ends after a failure
    finally:
        p.close()


def test_close_stops_a_blocked_thread_promptly():
    """close() ends a thread that waits on a full queue; it is a daemon in any case."""
    p = Prefetcher(lambda i: i, depth=1)
    time.sleep(0.05)
    assert p._thread.daemon
    started = time.perf_counter()
    p.close()
    assert not p.alive and time.perf_counter() - started < 1.0
    with pytest.raises(DataError, match="closed"):
        p.get()


def test_close_waits_for_the_item_in_progress():
    """close() returns only when produce has finished (so the caller may free its inputs)."""
    inside = threading.Event()

    def produce(i):
        inside.set()
        time.sleep(0.2)
        return i

    p = Prefetcher(produce, depth=1)
    inside.wait(1)
    p.close()
    assert not p.alive


def test_lazy_produces_nothing_before_the_first_get():
    """With lazy=True the thread waits for the first get (a net only set up reads nothing);
    closing one that was never asked ends it promptly."""
    calls = []
    p = Prefetcher(lambda i: calls.append(i) or i, depth=2, lazy=True)
    try:
        time.sleep(0.1)
        assert calls == [] and p.alive
        assert p.get() == 0
    finally:
        p.close()
    idle = Prefetcher(lambda i: calls.append(i) or i, depth=2, lazy=True)
    started = time.perf_counter()
    idle.close()
    assert not idle.alive and time.perf_counter() - started < 1.0
