"""DatumFeed: numbered batches from an LMDB; closing never raises, even when the prefetch
thread is stuck."""

import logging
import threading

import numpy as np

from brewnet.data import feed as feed_module
from brewnet.data.feed import DatumFeed
from brewnet.data.lmdb_source import LMDBSource
from brewnet.data.transform import DataTransformer
from brewnet.log import get_logger
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, make_lmdb

IMAGES = image_stack(6, (1, 2, 3), seed=3)


def _feed(path, **kw):
    transformer = DataTransformer(caffe_pb2.TransformationParameter(), caffe_pb2.TEST)
    return DatumFeed(LMDBSource(path), transformer, 2, **kw)


def test_batches_are_numbered_and_seekable(tmp_path):
    """Batch k holds records 2k, 2k+1 (mod 6); seek(k) makes batch k the next one."""
    feed = _feed(make_lmdb(tmp_path / "db", IMAGES))
    try:
        got = [feed.get() for _ in range(2)]
        assert [b.index for b in got] == [0, 1]
        np.testing.assert_array_equal(got[1].data, IMAGES[2:4])
        feed.seek(4)  # records 8, 9 -> 2, 3
        batch = feed.get()
        assert batch.index == 4
        np.testing.assert_array_equal(batch.data, IMAGES[2:4])
    finally:
        feed.close()


def test_close_with_a_stuck_thread_warns_and_still_closes_the_source(tmp_path, monkeypatch):
    """A prefetch thread that does not stop in time makes close() log a warning, not raise;
    the database is closed all the same."""
    monkeypatch.setattr(feed_module, "_CLOSE_TIMEOUT_S", 0.05)
    release = threading.Event()
    feed = _feed(make_lmdb(tmp_path / "db", IMAGES))
    feed.get()
    stuck = threading.Event()
    real_produce = feed._produce

    def slow_produce(index):
        stuck.set()
        release.wait(5)
        return real_produce(index)

    feed._produce = slow_produce
    feed.seek(1)  # restarts the thread with the slow producer
    assert stuck.wait(5)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    get_logger().addHandler(handler)
    try:
        feed.close()  # must not raise
    finally:
        get_logger().removeHandler(handler)
        release.set()
    assert feed.source._closed
    assert any(r.levelno == logging.WARNING and "did not stop" in r.getMessage()
               for r in records)
