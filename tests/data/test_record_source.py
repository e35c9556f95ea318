"""What the LMDB and LevelDB readers and writers share (brewnet/data/record_source.py), checked
on both backends: key order, stored Datums, wrap-around, seeking, and refusals naming paths."""

from __future__ import annotations

import importlib.util

import pytest

from brewnet.data.datum import array_to_datum
from brewnet.data.leveldb_source import LevelDBSource, write_leveldb
from brewnet.data.lmdb_source import LMDBSource, write_lmdb
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack

NO_PLYVEL = pytest.mark.skipif(importlib.util.find_spec("plyvel") is None,
                               reason="plyvel is not installed")
BACKENDS = [pytest.param(("LMDB", write_lmdb, LMDBSource), id="lmdb"),
            pytest.param(("LevelDB", write_leveldb, LevelDBSource), id="leveldb",
                         marks=NO_PLYVEL)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """(name as in messages, writer, reader) of one database kind."""
    return request.param


def fill(backend, path, count):
    """A database with keys ``%08d`` holding ``count`` tiny Datum records."""
    _, write, _ = backend
    images = image_stack(count, (1, 1, 1))
    write(path, ((b"%08d" % i, array_to_datum(img, i)) for i, img in enumerate(images)))
    return path


def test_round_trip_in_key_order(tmp_path, backend):
    """Records come back in key (byte) order, whatever order they were written in."""
    _, write, Source = backend
    keys = [b"%08d" % i for i in (3, 0, 2, 1)]
    assert write(tmp_path / "db", [(k, b"v" + k) for k in keys]) == 4
    with Source(tmp_path / "db") as src:
        assert len(src) == 4 and src.entries == 4 and src.position == 0
        got = src.read(4)
    assert got == [(k, b"v" + k) for k in sorted(keys)]


def test_datum_values_are_serialized_and_open_is_logged(tmp_path, backend, glog):
    """A Datum value is stored serialized and parses back equal; opening logs Caffe's line."""
    name, write, Source = backend
    datum = caffe_pb2.Datum(channels=1, height=1, width=2, data=b"\x01\x02", label=7)
    write(tmp_path / "db", [("k", datum)])
    with Source(tmp_path / "db") as src:
        key, raw = src.peek()
    assert key == b"k" and caffe_pb2.Datum.FromString(raw) == datum
    assert f"Opened {name.lower()} {tmp_path / 'db'}" in glog.messages()


def test_wraps_around_and_logs_restart(tmp_path, backend, glog):
    """Reading past the last record starts over at the first and logs Caffe's message."""
    _, _, Source = backend
    fill(backend, tmp_path / "db", 3)
    with Source(tmp_path / "db") as src:
        keys = [k for k, _ in src.read(7)]
        assert src.position == 1
    assert keys == [b"%08d" % (i % 3) for i in range(7)]
    assert glog.messages().count("Restarting data prefetching from start.") == 2


def test_seek(tmp_path, backend):
    """seek(i) puts the reader on record i mod count, forwards or backwards."""
    _, _, Source = backend
    fill(backend, tmp_path / "db", 5)
    with Source(tmp_path / "db") as src:
        src.seek(3)
        assert src.read(1)[0][0] == b"00000003"
        src.seek(1)  # backwards
        assert src.read(1)[0][0] == b"00000001"
        src.seek(8)  # 8 mod 5 = 3
        assert src.position == 3 and src.peek()[0] == b"00000003"
        src.seek(12)
        assert [k for k, _ in src.read(4)] == [b"%08d" % i for i in (2, 3, 4, 0)]


def test_writer_refuses_existing_path(tmp_path, backend):
    """Like Caffe's tools, the writer does not write into an existing database."""
    _, write, _ = backend
    (tmp_path / "db").mkdir()
    with pytest.raises(DataError, match="already exists"):
        write(tmp_path / "db", [])


def test_missing_database_names_path_and_owner(tmp_path, backend):
    """A missing database is a DataError naming the owner (the layer) and the path."""
    name, _, Source = backend
    with pytest.raises(DataError, match=rf"layer 'd' \(Data\): {name} '.*nope' does not exist"):
        Source(tmp_path / "nope", "layer 'd' (Data)")
