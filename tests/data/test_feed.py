"""DatumFeed: numbered batches from an LMDB, the same for any number of decoding workers;
closing never raises, even when the prefetch thread is stuck."""

import logging
import threading
import time

import numpy as np
import pytest

from brewnet.data import feed as feed_module
from brewnet.data.datum import decode_batch
from brewnet.data.feed import DatumFeed
from brewnet.data.lmdb_source import LMDBSource
from brewnet.data.transform import DataTransformer
from brewnet.errors import DataError
from brewnet.log import get_logger
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, jpeg_files, make_jpeg_lmdb, make_lmdb

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


def _jpeg_feed(path, workers, seed=7, batch=5, **kw):
    param = caffe_pb2.TransformationParameter(crop_size=24, mirror=True)
    param.mean_value.extend([100, 110, 120])
    transformer = DataTransformer(param, caffe_pb2.TRAIN)
    return DatumFeed(LMDBSource(path), transformer, batch, seed=seed, workers=workers, **kw)


def _batches(feed, count, seek=None):
    try:
        if seek is not None:
            feed.seek(seek)
        out = []
        for _ in range(count):
            batch = feed.get()
            out.append((batch.index, batch.data.copy(), batch.label.copy()))
            feed.release(batch)
        return out
    finally:
        feed.close()


def test_jpeg_batches_are_the_same_for_any_worker_count(tmp_path):
    """Encoded records with random crops and mirrors: 1, 2 and 3 workers give bitwise the
    same batches, over a wrap-around of the database."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(12))
    serial = _batches(_jpeg_feed(db, 1), 6)
    for workers in (2, 3):
        for (k, data, label), (k2, data2, label2) in zip(
                serial, _batches(_jpeg_feed(db, workers), 6), strict=True):
            assert k == k2
            assert data.tobytes() == data2.tobytes() and label.tobytes() == label2.tobytes()


def test_parts_sharing_one_window_are_the_same_for_any_worker_count(tmp_path):
    """TEST phase, centre crop and no mirror: small images go to the workers in parts that
    are transformed in one operation each; 1 and 2 workers still agree bitwise, and agree
    with the transformer over the serially decoded batch."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(40, size=64))
    param = caffe_pb2.TransformationParameter(crop_size=60, scale=0.5)
    param.mean_value.extend([100, 110, 120])
    runs = []
    for workers in (1, 2):
        transformer = DataTransformer(param, caffe_pb2.TEST)
        feed = DatumFeed(LMDBSource(db), transformer, 30, workers=workers)
        runs.append(_batches(feed, 2))
    for (k, data, label), (k2, data2, label2) in zip(*runs, strict=True):
        assert k == k2 and data.tobytes() == data2.tobytes()
        assert label.tobytes() == label2.tobytes()
    source = LMDBSource(db)
    try:
        images, _ = decode_batch(source.read(30), source.where)
    finally:
        source.close()
    want = np.empty_like(runs[0][0][1])
    DataTransformer(param, caffe_pb2.TEST)(images, want)
    assert want.tobytes() == runs[0][0][1].tobytes()


def test_jpeg_batches_match_decoding_the_whole_batch_serially(tmp_path):
    """A parallel batch is what decode_batch and the transformer make of its records."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(10))
    feed = _jpeg_feed(db, 2)
    (_, got, labels), = _batches(feed, 1, seek=1)
    source = LMDBSource(db)
    try:
        source.seek(5)
        data, want_labels = decode_batch(source.read(5), source.where)
    finally:
        source.close()
    want = np.empty_like(got)
    feed.transformer(data, want, np.random.default_rng((7, 1)))
    assert got.tobytes() == want.tobytes()
    np.testing.assert_array_equal(labels, want_labels)


def test_seek_with_workers_resumes_exactly(tmp_path):
    """Seeking to batch k with 2 workers (after prefetching had run ahead) gives the batches
    an uninterrupted run has from k on."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(12))
    straight = _batches(_jpeg_feed(db, 2), 7)
    feed = _jpeg_feed(db, 2)
    feed.release(feed.get())
    resumed = _batches(feed, 3, seek=4)
    for (k, data, label), (k2, data2, label2) in zip(straight[4:], resumed, strict=True):
        assert k == k2 and data.tobytes() == data2.tobytes()
        assert label.tobytes() == label2.tobytes()


def test_corrupt_record_gives_the_serial_error_with_workers(tmp_path):
    """Two damaged records in one batch: every worker count raises the error of the first,
    word for word as decoding the batch serially does, and raises it again on the next get."""
    pytest.importorskip("PIL")
    files = jpeg_files(8)
    files[3] = files[3][: len(files[3]) // 2]  # truncated
    files[6] = b"not an image at all"
    db = make_jpeg_lmdb(tmp_path / "db", files)
    source = LMDBSource(db)
    try:
        with pytest.raises(DataError) as serial:
            decode_batch(source.read(8), source.where)
    finally:
        source.close()
    assert "record '00000003'" in str(serial.value)
    for workers in (1, 2, 3):
        feed = _jpeg_feed(db, workers, batch=8)
        try:
            for _ in range(2):
                with pytest.raises(DataError) as parallel:
                    feed.get()
                assert str(parallel.value) == str(serial.value)
        finally:
            feed.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_first_record_of_the_next_batch_fails_that_batch_only(tmp_path, workers):
    """The next batch's first record is read and decoded while a batch finishes: its damage
    fails the next batch, not the one being finished, and with the serial error."""
    pytest.importorskip("PIL")
    files = jpeg_files(10)
    files[5] = b"not an image at all"
    db = make_jpeg_lmdb(tmp_path / "db", files)
    feed = _jpeg_feed(db, workers)
    try:
        batch = feed.get()
        assert batch.index == 0
        feed.release(batch)
        with pytest.raises(DataError, match="record '00000005' is not an image"):
            feed.get()
    finally:
        feed.close()


def test_close_while_workers_decode_returns_promptly(tmp_path):
    """close() during a batch of slow images stops the workers after their current image
    and returns at once, leaving no thread."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(6))
    feed = _jpeg_feed(db, 2, batch=6)
    busy = threading.Event()
    real_decode = feed._decode

    def slow_decode(item):
        busy.set()
        time.sleep(0.05)
        return real_decode(item)

    feed._decode = slow_decode
    feed.seek(0)  # starts producing: 6 images of 0.05 s on 2 workers, for ever
    assert busy.wait(5)
    started = time.perf_counter()
    feed.close()
    assert time.perf_counter() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("brewnet-data")]
