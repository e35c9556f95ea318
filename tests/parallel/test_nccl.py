"""The NCCL engine against stand-ins for CuPy and its NCCL binding (no GPU on the CI machine):
which calls it makes, in which order, on which stream; and the unique id's two spellings."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from brewnet import backend
from brewnet.errors import BrewnetError
from brewnet.parallel import nccl as engine


class DeviceArray(np.ndarray):
    """A NumPy array with CuPy's ``.data.ptr``."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])


class Log(list):
    def add(self, *entry):
        self.append(entry)


@pytest.fixture
def fake(monkeypatch):
    """cupy, cupy.cuda and cupy.cuda.nccl stand-ins; the peer rank holds the same values, so
    an all-reduce doubles what it is given. Returns the call log."""
    log = Log()
    arrays: dict[int, DeviceArray] = {}

    def asarray(x):
        a = np.array(x).view(DeviceArray)
        arrays[a.data.ptr] = a
        return a

    class Stream:
        def __init__(self, non_blocking=False, name="collective"):
            self.name, self.ptr = name, id(self)

        def record(self):
            log.add("record", self.name)
            return f"event of {self.name}"

        def wait_event(self, event):
            log.add("wait", self.name, event)

    current = Stream(name="current")

    class Communicator:
        def __init__(self, size, uid, rank):
            if isinstance(uid, bytes):
                raise TypeError("this CuPy takes a tuple")
            log.add("init", size, uid, rank)

        def allReduce(self, send, recv, count, dtype, op, stream):  # CuPy's name
            assert send == recv
            arrays[send] *= 2
            log.add("allReduce", count, dtype, op, stream)

        def bcast(self, buff, count, dtype, root, stream):
            log.add("bcast", count, dtype, root)

    nccl = types.SimpleNamespace(
        available=True, NcclCommunicator=Communicator, NCCL_FLOAT32=7, NCCL_FLOAT64=8,
        NCCL_INT64=4, NCCL_SUM=0, get_unique_id=lambda: tuple([-1, 2] + [0] * 126))
    cuda = types.SimpleNamespace(Stream=Stream, get_current_stream=lambda: current, nccl=nccl)
    cupy = types.SimpleNamespace(cuda=cuda, asarray=asarray, asnumpy=np.asarray)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    monkeypatch.setattr(backend, "cupy_or_none", lambda: cupy)
    log.asarray = asarray
    return log


def test_has_nccl_and_the_uid_as_bytes(fake):
    assert backend.has_nccl() is True
    assert engine.new_uid() == bytes([255, 2] + [0] * 126)


def test_old_cupy_gets_the_uid_as_signed_chars(fake):
    engine.NcclComm(bytes([255, 2] + [0] * 126), 2, 1)
    assert fake[0] == ("init", 2, tuple([-1, 2] + [0] * 126), 1)


def test_allreduce_is_queued_after_the_current_stream_and_waited_for(fake):
    comm = engine.NcclComm(bytes(128), 2, 0)
    x = fake.asarray(np.arange(6, dtype=np.float32))
    fake.clear()
    comm.start_allreduce(x).wait()
    stream = comm._stream.ptr
    assert fake == [("record", "current"), ("wait", "collective", "event of current"),
                    ("allReduce", 6, 7, 0, stream), ("record", "collective"),
                    ("wait", "current", "event of collective")]
    np.testing.assert_array_equal(x, np.arange(6) * 2)


def test_small_host_values_and_broadcast(fake):
    comm = engine.NcclComm(bytes(128), 2, 0)
    np.testing.assert_array_equal(comm.sum_values(np.array([1.5], np.float32)), [3.0])
    fake.clear()
    comm.bcast_values(np.array([7, 3], np.int64))
    assert ("bcast", 2, 4, 0) in fake


def test_what_nccl_cannot_exchange_is_refused(fake):
    comm = engine.NcclComm(bytes(128), 2, 0)
    with pytest.raises(BrewnetError, match="float32/float64/int64"):
        comm.allreduce(fake.asarray(np.zeros(3, np.int8)))
