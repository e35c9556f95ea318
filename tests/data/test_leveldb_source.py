"""LevelDB of Datum records: what only the LevelDB backend does (shared handles, refusals,
plyvel being optional); reading, seeking and writing are in test_record_source.py."""

import sys

import pytest

from brewnet.data import leveldb_source
from brewnet.data.datum import array_to_datum
from brewnet.data.leveldb_source import LevelDBSource, write_leveldb
from brewnet.errors import DataError
from tests.data.helpers import image_stack, make_lmdb

pytest.importorskip("plyvel")


def make_leveldb(path, count):
    """A LevelDB with keys ``%08d`` holding ``count`` tiny Datum records."""
    images = image_stack(count, (1, 1, 1))
    write_leveldb(path, ((b"%08d" % i, array_to_datum(img, i)) for i, img in enumerate(images)))
    return path






def test_two_readers_share_one_database(tmp_path):
    """Two readers may have one LevelDB open at once (LevelDB locks its folder per open), each
    with its own position; the database closes after the last one."""
    make_leveldb(tmp_path / "db", 4)
    with LevelDBSource(tmp_path / "db") as a, LevelDBSource(tmp_path / "db") as b:
        a.read(3)
        assert b.read(1)[0][0] == b"00000000" and a.peek()[0] == b"00000003"
    assert not leveldb_source._DBS




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
