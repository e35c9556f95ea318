"""Scratch arrays: one buffer per role and thread, grown to the largest request."""

import threading

import numpy as np

from brewnet.layers.scratch import scratch


def test_one_buffer_per_role_grows_to_the_largest_request():
    """Requests for a role share memory; a larger one replaces the buffer; another role gets
    its own."""
    small = scratch(np, "test.a", (2, 3))
    again = scratch(np, "test.a", (3, 2))
    assert small.dtype == np.float32 and again.shape == (3, 2)
    assert np.shares_memory(small, again)
    assert not np.shares_memory(scratch(np, "test.b", (2, 3)), again)
    big = scratch(np, "test.a", (10, 10))
    assert big.shape == (10, 10) and not np.shares_memory(big, small)
    assert np.shares_memory(scratch(np, "test.a", (4,)), big)


def test_threads_get_their_own_buffers():
    """Nets running in two threads never write into each other's scratch."""
    mine = scratch(np, "test.thread", (4,))
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch(np, "test.thread", (4,))))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])


def test_other_dtypes_share_the_role_buffer():
    """A bool request (ReLU's mask) is a view of the same float32 buffer, sized in bytes: a
    role serves arrays of any dtype without a second allocation."""
    floats = scratch(np, "test.dtype", (3, 4))
    mask = scratch(np, "test.dtype", (3, 4, 4), dtype=bool)
    assert mask.dtype == bool and mask.shape == (3, 4, 4)
    assert np.shares_memory(mask, floats)
    assert scratch(np, "test.dtype", (7,), dtype=bool).shape == (7,)
