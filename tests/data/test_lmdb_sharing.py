"""Several training runs share one LMDB: readers open it read-only without the lock file, so
two processes read at once, a writer holding a transaction open does not block them, and a
database in a read-only folder (no lock.mdb can be created there) still reads."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import lmdb
import pytest

from brewnet.data.lmdb_source import LMDBSource
from tests.data.helpers import image_stack, make_lmdb

REPO = Path(__file__).resolve().parents[2]
COUNT = 12

# Opens the database, says so, waits for a line on stdin, then reads every record and prints
# how many it read and a checksum of their bytes.
READER = """
import sys, zlib
from brewnet.data.lmdb_source import LMDBSource
src = LMDBSource(sys.argv[1], "reader")
print("open", flush=True)
sys.stdin.readline()
records = src.read(len(src))
print(len(records), zlib.crc32(b"".join(k + v for k, v in records)), flush=True)
src.close()
"""

# Holds a write transaction open with one uncommitted record until told to stop.
WRITER = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=1 << 24)
txn = env.begin(write=True)
txn.put(b"zzzz-uncommitted", b"not a datum")
print("writing", flush=True)
sys.stdin.readline()
txn.abort()
env.close()
"""


def _spawn(code: str, db: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=db.parent, **kw)


def _expected(db: Path) -> str:
    """What READER prints for ``db``, computed in this process."""
    with LMDBSource(db) as src:
        records = src.read(len(src))
    return f"{len(records)} {zlib.crc32(b''.join(k + v for k, v in records))}"


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    return out


@pytest.fixture
def db(tmp_path) -> Path:
    return make_lmdb(tmp_path / "shared_lmdb", image_stack(COUNT, (1, 4, 4)))


def test_two_processes_read_at_once(db):
    """Two reader processes hold the database open together (and this process a third
    reader); each reads every record."""
    mine = LMDBSource(db)
    readers = [_spawn(READER, db) for _ in range(2)]
    try:
        for proc in readers:
            assert proc.stdout.readline().strip() == "open", proc.stderr.read()
        outs = [_finish(proc) for proc in readers]
    finally:
        for proc in readers:
            proc.kill()
            proc.wait()
        mine.close()
    expected = _expected(db)
    assert [o.split("\n")[-2] for o in outs] == [expected, expected]


def test_writer_in_progress_does_not_block_readers(db):
    """A process in the middle of a write transaction neither blocks a reader nor shows it
    uncommitted records."""
    writer = _spawn(WRITER, db)
    try:
        assert writer.stdout.readline().strip() == "writing", writer.stderr.read()
        with LMDBSource(db) as src:
            keys = [k for k, _ in src.read(len(src))]
        assert len(keys) == COUNT and b"zzzz-uncommitted" not in keys
        _finish(writer)
    finally:
        writer.kill()
        writer.wait()


def test_read_only_folder(db):
    """A database on a read-only mount (a shared or archived dataset: no lock.mdb can be
    created there) opens and reads, and the reader creates nothing. Root ignores file
    permissions, so as root the reader runs in a private mount namespace where the folder is
    bind-mounted read-only; otherwise the folder is made read-only with chmod."""
    before = sorted(os.listdir(db))
    expected = _expected(db)
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("running as root without unshare(1): cannot make a read-only folder")
        script = ('mount --bind -o ro "$1" "$1" && touch "$1/probe" 2>/dev/null && exit 3; '
                  'exec "$2" -c "$3" "$1"')
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen([unshare, "--mount", "sh", "-c", script, "sh", str(db),
                                 sys.executable, READER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=db.parent)
        try:
            line = proc.stdout.readline().strip()
            if line != "open":
                proc.communicate(timeout=30)
                if proc.returncode == 3:
                    pytest.fail("the read-only bind mount was writable")
                pytest.skip(f"no read-only bind mount here (exit {proc.returncode})")
            out = _finish(proc)
        finally:
            proc.kill()
            proc.wait()
        assert out.split("\n")[-2] == expected
    else:
        for f in db.iterdir():
            os.chmod(f, 0o444)
        os.chmod(db, 0o555)
        try:
            with pytest.raises(PermissionError):
                (db / "probe").write_bytes(b"")
            with LMDBSource(db) as src:
                assert len(src.read(len(src))) == COUNT
        finally:
            os.chmod(db, stat.S_IRWXU)
    assert sorted(os.listdir(db)) == before  # no lock.mdb appeared


def test_reader_sees_database_unchanged(db):
    """Reading modifies nothing: the data file's bytes and the folder's listing are the
    same afterwards (lmdb.open with readonly=True and lock=False)."""
    data = (db / "data.mdb").read_bytes()
    listing = sorted(os.listdir(db))
    with LMDBSource(db) as src:
        src.read(3 * len(src))
    assert (db / "data.mdb").read_bytes() == data
    assert sorted(os.listdir(db)) == listing
    env = lmdb.open(str(db), readonly=True, lock=False)
    try:
        assert env.stat()["entries"] == COUNT
    finally:
        env.close()
    assert sorted(os.listdir(db)) == listing
