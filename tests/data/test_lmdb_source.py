"""LMDB of Datum records: what only the LMDB backend does (growing the map, shared
environments, refusals); reading, seeking and writing are in test_record_source.py."""

import lmdb
import numpy as np
import pytest

from brewnet.data import lmdb_source
from brewnet.data.lmdb_source import LMDBSource, write_lmdb
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, make_lmdb


def test_writer_grows_the_map(tmp_path):
    """A map far too small for the data is grown instead of failing with MDB_MAP_FULL."""
    values = [(b"%08d" % i, bytes(5000)) for i in range(300)]  # 1.5 MB into a 64 KiB map
    assert write_lmdb(tmp_path / "db", values, map_size=1 << 16) == 300
    with LMDBSource(tmp_path / "db") as src:
        assert len(src) == 300




def test_empty_database_is_an_error(tmp_path):
    """An LMDB with no records is a DataError (a data layer could never fill a batch)."""
    lmdb.open(str(tmp_path / "db")).close()
    with pytest.raises(DataError, match="is empty"):
        LMDBSource(tmp_path / "db")


def test_not_an_lmdb(tmp_path):
    """A folder that is no LMDB is a DataError naming it."""
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(b"garbage" * 1000)
    with pytest.raises(DataError, match="cannot be opened as an LMDB"):
        LMDBSource(tmp_path / "db")


def test_images_survive_round_trip(tmp_path):
    """Pixel bytes and labels written through the helper read back unchanged."""
    images = image_stack(4, (3, 2, 5))
    make_lmdb(tmp_path / "db", images, np.array([4, 3, 2, 1]))
    with LMDBSource(tmp_path / "db") as src:
        datums = [caffe_pb2.Datum.FromString(v) for _, v in src.read(4)]
    for img, d, lbl in zip(images, datums, [4, 3, 2, 1], strict=True):
        assert (d.channels, d.height, d.width, d.label) == (3, 2, 5, lbl)
        assert d.data == img.tobytes()


def test_two_readers_of_one_database_in_one_process(tmp_path):
    """A TRAIN and a TEST Data layer may read the same LMDB at once (py-lmdb allows one open
    environment per process; brewnet shares it), each with its own position."""
    from brewnet.data.lmdb_source import LMDBSource, write_lmdb

    path = tmp_path / "db"
    write_lmdb(path, [(f"{i:08d}", bytes([i])) for i in range(3)])
    a, b = LMDBSource(path), LMDBSource(path)
    assert [v for _, v in a.read(2)] == [b"\x00", b"\x01"]
    assert [v for _, v in b.read(1)] == [b"\x00"]
    a.close()
    assert [v for _, v in b.read(1)] == [b"\x01"]  # still readable after the other closed
    b.close()
    c = LMDBSource(path)  # reopens after both closed
    assert c.entries == 3
    c.close()


class _FailingEnv:
    """Wraps a real environment; ``stat`` or ``begin`` raise lmdb.Error as a damaged or
    vanished database would."""

    def __init__(self, env, fail):
        self._env, self._fail = env, fail

    def stat(self):
        if self._fail == "stat":
            raise lmdb.Error("stat failed")
        return self._env.stat()

    def begin(self, **kw):
        if self._fail == "begin":
            raise lmdb.Error("begin failed")
        return self._env.begin(**kw)


@pytest.mark.parametrize("fail", ["stat", "begin"])
def test_lmdb_errors_after_open_release_the_shared_environment(tmp_path, monkeypatch, fail):
    """An lmdb.Error from stat/begin is a DataError naming the path, and the shared
    environment opened just before is released (no reader count left behind)."""
    make_lmdb(tmp_path / "db", image_stack(2, (1, 1, 1)))
    real_acquire = lmdb_source._ENVS.acquire
    monkeypatch.setattr(lmdb_source._ENVS, "acquire",
                        lambda path, open_handle: _FailingEnv(real_acquire(path, open_handle),
                                                              fail))
    with pytest.raises(DataError, match=rf"layer 'x': LMDB '.*db' cannot be read: {fail} failed"):
        LMDBSource(tmp_path / "db", owner="layer 'x'")
    assert not lmdb_source._ENVS


class _BrokenCursor:
    def key(self):
        raise lmdb.Error("MDB_CORRUPTED")

    value = next = first = key


def test_lmdb_errors_while_reading_name_the_path(tmp_path):
    """An lmdb.Error from the cursor (read, peek, seek) is a DataError naming the database,
    so the prefetch thread hands the consumer an actionable error."""
    make_lmdb(tmp_path / "db", image_stack(3, (1, 1, 1)))
    with LMDBSource(tmp_path / "db", owner="layer 'x'") as src:
        good = src._cursor
        src._cursor = _BrokenCursor()
        for call in (lambda: src.read(1), src.peek, lambda: src.seek(2)):
            with pytest.raises(DataError, match=r"layer 'x': LMDB '.*db': reading failed at "
                                                "record 0: MDB_CORRUPTED"):
                call()
        src._cursor = good
    assert not lmdb_source._ENVS


_WRITER = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=1 << 24)
with env.begin(write=True) as txn:
    for i in range(5):
        txn.put(b"%08d" % i, b"committed")
txn = env.begin(write=True)  # held open: its records are never committed while we read
for i in range(5, 50):
    txn.put(b"%08d" % i, b"uncommitted")
print("ready", flush=True)
sys.stdin.readline()
print(" ".join(r.split()[0] for r in env.readers().splitlines()[1:]), flush=True)
txn.abort()
"""


def test_reader_uses_the_lock_table_beside_a_writer(tmp_path):
    """While another process holds a write transaction open, a reader opens the database,
    sees only the committed records, and is registered in LMDB's reader table (Caffe's
    locking), so the writer never reuses the pages it reads."""
    import os
    import subprocess
    import sys

    path = tmp_path / "db"
    path.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with LMDBSource(path) as src:
            assert len(src) == 5
            assert {v for _, v in src.read(5)} == {b"committed"}
            writer.stdin.write("readers?\n")
            writer.stdin.flush()
            reader_pids = writer.stdout.readline().split()
        assert str(os.getpid()) in reader_pids
    finally:
        writer.kill()
        writer.wait()


def test_read_only_media_fall_back_to_lock_free_reading(tmp_path, monkeypatch, caplog):
    """Where LMDB's lock file cannot be created, the database is read without locks and the
    log says so (no lock file appears)."""
    make_lmdb(tmp_path / "db", image_stack(2, (1, 2, 2)))
    (tmp_path / "db" / "lock.mdb").unlink()
    monkeypatch.setattr(lmdb_source, "_lock_file_writable", lambda path, subdir: False)
    with caplog.at_level("INFO", logger="brewnet"), LMDBSource(tmp_path / "db") as src:
        assert len(src) == 2
    assert "reading without locks" in caplog.text
    assert not (tmp_path / "db" / "lock.mdb").exists()


def test_truncated_data_file_is_refused_not_a_sigbus(tmp_path):
    """A partial copy of data.mdb is refused at open, naming the file; reading it (in a child
    process, so a SIGBUS could not take pytest down) never gets to map the missing pages."""
    import subprocess
    import sys

    write_lmdb(tmp_path / "db", [(b"%08d" % i, bytes(3000)) for i in range(200)])
    data = tmp_path / "db" / "data.mdb"
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)
    code = ("import sys\nfrom brewnet.data.lmdb_source import LMDBSource\n"
            "src = LMDBSource(sys.argv[1])\nsrc.read(len(src))\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert f"'{data}' is truncated" in run.stderr
