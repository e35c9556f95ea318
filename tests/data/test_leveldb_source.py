"""LevelDB of Datum records: writer, key-order reader with wrap-around and seeking."""

import logging
import sys

import pytest

from brewnet.data import leveldb_source
from brewnet.data.datum import array_to_datum
from brewnet.data.leveldb_source import LevelDBSource, write_leveldb
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, make_lmdb

pytest.importorskip("plyvel")


def make_leveldb(path, count):
    """A LevelDB with keys ``%08d`` holding ``count`` tiny Datum records."""
    images = image_stack(count, (1, 1, 1))
    write_leveldb(path, ((b"%08d" % i, array_to_datum(img, i)) for i, img in enumerate(images)))
    return path


def captured(caplog):
    """Attach caplog to brewnet's logger (it does not propagate to the root)."""
    logger = logging.getLogger("brewnet")
    logger.addHandler(caplog.handler)
    return logger


def test_round_trip_in_key_order(tmp_path):
    """Records come back in key (byte) order, whatever order they were written in."""
    keys = [b"%08d" % i for i in (3, 0, 2, 1)]
    assert write_leveldb(tmp_path / "db", [(k, b"v" + k) for k in keys]) == 4
    with LevelDBSource(tmp_path / "db") as src:
        assert len(src) == 4 and src.entries == 4 and src.position == 0
        got = src.read(4)
    assert got == [(k, b"v" + k) for k in sorted(keys)]


def test_datum_values_are_serialized_and_open_is_logged(tmp_path, caplog):
    """A Datum value is stored serialized and parses back equal; opening logs Caffe's line."""
    datum = caffe_pb2.Datum(channels=1, height=1, width=2, data=b"\x01\x02", label=7)
    write_leveldb(tmp_path / "db", [("k", datum)])
    logger = captured(caplog)
    try:
        with LevelDBSource(tmp_path / "db") as src:
            key, raw = src.peek()
    finally:
        logger.removeHandler(caplog.handler)
    assert key == b"k" and caffe_pb2.Datum.FromString(raw) == datum
    assert f"Opened leveldb {tmp_path / 'db'}" in [r.getMessage() for r in caplog.records]


def test_wraps_around_and_logs_restart(tmp_path, caplog):
    """Reading past the last record starts over at the first and logs Caffe's message."""
    make_leveldb(tmp_path / "db", 3)
    logger = captured(caplog)
    try:
        with LevelDBSource(tmp_path / "db") as src:
            keys = [k for k, _ in src.read(7)]
            assert src.position == 1
    finally:
        logger.removeHandler(caplog.handler)
    assert keys == [b"%08d" % (i % 3) for i in range(7)]
    restarts = [r for r in caplog.records
                if r.getMessage() == "Restarting data prefetching from start."]
    assert len(restarts) == 2


def test_seek(tmp_path):
    """seek(i) puts the reader on record i mod count, forwards or backwards."""
    make_leveldb(tmp_path / "db", 5)
    with LevelDBSource(tmp_path / "db") as src:
        src.seek(3)
        assert src.read(1)[0][0] == b"00000003"
        src.seek(1)  # backwards
        assert src.read(1)[0][0] == b"00000001"
        src.seek(8)  # 8 mod 5 = 3
        assert src.position == 3 and src.peek()[0] == b"00000003"
        src.seek(12)
        assert [k for k, _ in src.read(4)] == [b"%08d" % i for i in (2, 3, 4, 0)]


def test_two_readers_share_one_database(tmp_path):
    """Two readers may have one LevelDB open at once (LevelDB locks its folder per open), each
    with its own position; the database closes after the last one."""
    make_leveldb(tmp_path / "db", 4)
    with LevelDBSource(tmp_path / "db") as a, LevelDBSource(tmp_path / "db") as b:
        a.read(3)
        assert b.read(1)[0][0] == b"00000000" and a.peek()[0] == b"00000003"
    assert not leveldb_source._DBS


def test_writer_refuses_existing_path(tmp_path):
    """Like Caffe's tools, the writer does not write into an existing database."""
    (tmp_path / "db").mkdir()
    with pytest.raises(DataError, match="already exists"):
        write_leveldb(tmp_path / "db", [])


def test_missing_path_names_it_and_the_owner(tmp_path):
    """A missing database is a DataError naming the owner (the layer) and the path."""
    with pytest.raises(DataError, match=r"layer 'd' \(Data\): LevelDB '.*nope' does not exist"):
        LevelDBSource(tmp_path / "nope", "layer 'd' (Data)")


def test_not_a_leveldb(tmp_path):
    """A folder that is no LevelDB (an empty one, or an LMDB) is a DataError naming it."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"LevelDB '.*empty' cannot be opened as a LevelDB: "
                                        r"[^b]"):
        LevelDBSource(tmp_path / "empty")
    make_lmdb(tmp_path / "lmdb", image_stack(2, (1, 1, 1)))
    with pytest.raises(DataError, match="cannot be opened as a LevelDB"):
        LevelDBSource(tmp_path / "lmdb")
    assert not leveldb_source._DBS


def test_empty_database(tmp_path):
    """A LevelDB with no records is refused at open, and its handle is released."""
    write_leveldb(tmp_path / "db", [])
    with pytest.raises(DataError, match="is empty"):
        LevelDBSource(tmp_path / "db")
    assert not leveldb_source._DBS


def test_missing_plyvel_says_how_to_install(tmp_path, monkeypatch):
    """Without plyvel, opening or writing a LevelDB names the owner and the pip extra."""
    monkeypatch.setitem(sys.modules, "plyvel", None)  # makes `import plyvel` raise ImportError
    with pytest.raises(DataError, match=r"layer 'd' \(Data\): .*needs plyvel.*"
                                        r"pip install 'brewnet\[leveldb\]'"):
        LevelDBSource(tmp_path / "db", "layer 'd' (Data)")
    with pytest.raises(DataError, match=r"needs plyvel.*pip install 'brewnet\[leveldb\]'"):
        write_leveldb(tmp_path / "db", [])
