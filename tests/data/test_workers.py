"""Workers: a batch's items spread over threads with the outcome of a serial loop."""

import threading
import time

import pytest

from brewnet.data.workers import ENV, Workers, worker_count
from brewnet.errors import DataError


def test_every_index_once_on_several_threads():
    """Each index is worked exactly once; more than one thread takes part."""
    seen: list[int] = []
    names: set[str] = set()
    workers = Workers(3, "brewnet-data-test")

    def work(i):
        time.sleep(0.002)  # long enough for the helpers to take their share
        seen.append(i)
        names.add(threading.current_thread().name)

    try:
        workers.run(work, 40, threading.Event())
    finally:
        assert workers.close(5.0)
    assert sorted(seen) == list(range(40))
    assert len(names) > 1


@pytest.mark.parametrize("count", [1, 2, 4])
def test_lowest_failing_index_is_raised(count):
    """Of several failures the one at the lowest index is raised, as a serial loop would,
    whatever the number of threads and whichever finishes first."""
    def work(i):
        if i in (5, 9, 30):
            time.sleep(0.01 if i == 5 else 0)  # the lowest failure is the last to happen
            raise ValueError(f"item {i}")

    workers = Workers(count, "brewnet-data-test")
    try:
        with pytest.raises(ValueError, match="item 5"):
            workers.run(work, 40, threading.Event())
    finally:
        workers.close(5.0)


@pytest.mark.parametrize("count", [1, 3])
def test_meanwhile_runs_in_the_calling_thread_before_run_returns(count):
    """``meanwhile`` runs once, in the calling thread, after it has found no index left and
    before run returns; every index is done by then."""
    seen: list[int] = []
    calls: list[tuple[str, int]] = []
    workers = Workers(count, "brewnet-data-test")

    def work(i):
        time.sleep(0.002)
        seen.append(i)

    try:
        workers.run(work, 20, threading.Event(),
                    lambda: calls.append((threading.current_thread().name, len(seen))))
    finally:
        assert workers.close(5.0)
    assert sorted(seen) == list(range(20))
    assert len(calls) == 1 and calls[0][0] == threading.current_thread().name


def test_stop_ends_a_batch_and_starts_no_thread():
    """With the stop event set run takes no item and raises; close ends the threads."""
    calls: list[int] = []
    stop = threading.Event()
    stop.set()
    workers = Workers(2, "brewnet-data-test")
    with pytest.raises(DataError, match="closed"):
        workers.run(calls.append, 10, stop, lambda: calls.append(-1))
    assert calls == [] and not workers._threads
    assert workers.close(1.0)


def test_worker_count_from_the_environment(monkeypatch):
    """BREWNET_DATA_WORKERS sets the count; unset means every usable core; nonsense is a
    DataError naming the variable."""
    monkeypatch.setenv(ENV, "3")
    assert worker_count() == 3
    monkeypatch.delenv(ENV)
    assert worker_count() >= 1
    monkeypatch.setenv(ENV, "0")
    with pytest.raises(DataError, match="BREWNET_DATA_WORKERS='0' is not a positive"):
        worker_count()
