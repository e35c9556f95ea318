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


def test_queue_is_bounded():
    """The thread runs at most ``depth`` items (plus the one it is handing over) ahead."""
    calls = []
    p = Prefetcher(lambda i: calls.append(i) or i, depth=2)
    try:
        time.sleep(0.2)
        assert len(calls) <= 3
        assert p.get() == 0
        time.sleep(0.2)
        assert len(calls) <= 4
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
