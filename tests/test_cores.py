"""brewnet.cores: a net's pass splits its batch over threads, OpenBLAS on one thread meanwhile.

Facts checked: the split covers the batch exactly; OpenBLAS's thread count is 1 inside a pass
and restored after it, untouched for a batch of one; a worker's exception reaches the caller;
a forked child splits over threads of its own.
The layers' split paths: tests/layers/test_batch_split.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from brewnet import cores


def test_numpys_own_openblas_comes_first():
    """Another package's OpenBLAS sorts before NumPy's by name; NumPy's is still chosen."""
    mine = "/env/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so"
    other = "/env/site-packages/aaa.libs/libopenblas.so.0"
    assert cores.numpy_blas_first({other, mine}) == [mine, other]
    assert cores.numpy_blas_first({other}) == [other]


def test_parts_outside_a_pass_is_the_whole_batch():
    assert cores.parts(np, 10) == [(0, 10)]


def test_parts_cover_the_batch_and_blas_runs_one_thread_inside(two_blas_threads):
    with cores.sharing(8):
        assert cores.blas_threads() == 1
        assert cores.parts(np, 7) == [(0, 3), (3, 7)]
        assert cores.parts(np, 1) == [(0, 1)]
        assert cores.parts(np, 7, minimum=4) == [(0, 7)]
        seen = cores.split(np, 9, lambda a, b: (a, b, threading.get_ident()))
        # What a range calls runs whole: no split inside a split.
        inner = cores.split(np, 2, lambda a, b: cores.parts(np, 6))
        with cores.sharing(8):  # a nested pass joins the outer one
            assert cores.parts(np, 4) == [(0, 2), (2, 4)]
    assert cores.blas_threads() == 2
    assert [s[:2] for s in seen] == [(0, 4), (4, 9)]
    assert inner == [[(0, 6)], [(0, 6)]]
    assert seen[0][2] == threading.get_ident() != seen[1][2]


def test_a_batch_of_one_keeps_blas_threads(two_blas_threads):
    with cores.sharing(1):
        assert cores.blas_threads() == 2
        assert cores.parts(np, 8) == [(0, 8)]


def test_split_turned_off_by_the_environment(two_blas_threads, monkeypatch):
    monkeypatch.setenv("BREWNET_BATCH_SPLIT", "0")
    with cores.sharing(8):
        assert cores.parts(np, 8) == [(0, 8)]
        assert cores.blas_threads() == 2


def test_a_workers_error_reaches_the_caller(two_blas_threads):
    def fail_second(a, b):
        if a:
            raise ValueError("second range failed")
        return a

    with cores.sharing(8), pytest.raises(ValueError, match="second range"):
        cores.split(np, 4, fail_second)
    assert cores.blas_threads() == 2


def test_a_forked_child_splits_with_threads_of_its_own(two_blas_threads):
    """After fork the parent's pool threads are gone: a child that split with them would
    wait forever; it gets a pool of its own."""
    with cores.sharing(4):
        cores.split(np, 4, lambda a, b: a)  # the parent's pool thread exists now
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a pass of its own, split over fresh threads
            code = 1
            try:
                with cores.sharing(4):
                    code = 0 if cores.split(np, 4, lambda a, b: (a, b)) == [(0, 2), (2, 4)] else 1
            finally:
                os.write(write, bytes([code]))
                os._exit(code)
        os.close(write)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:  # the child hangs: waiting on the parent's threads
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's split never returned")
        assert os.read(read, 1) == b"\x00"
        assert os.waitstatus_to_exitcode(done[1]) == 0
