"""LMDB databases of Datum records, as Caffe's convert_* tools write them and DataLayer reads.

The writer grows the memory map whenever a chunk does not fit (Caffe's fixed map size gave
``MDB_MAP_FULL``, #2128). The reader walks records in key order, wrapping at the end like
Caffe's cursor, and can seek to any record index so a resumed run continues the same order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import lmdb
from google.protobuf.message import Message

from ..errors import DataError
from ..fileio import atomic_folder
from ..log import log
from .record_source import RecordSource, encoded, require_path
from .shared_handles import SharedHandles

_INITIAL_MAP_SIZE = 1 << 26  # 64 MiB; doubled on demand
_CHUNK = 1000  # records per write transaction


def write_lmdb(path: str | os.PathLike, records: Iterable[tuple[bytes | str, Message | bytes]],
               map_size: int | None = None) -> int:
    """Create the LMDB folder ``path`` holding ``records`` (key, Datum or serialized bytes).

    Returns the number of records written. ``path`` must not exist yet (as Caffe's tools).
    The database is built under a temporary name and renamed to ``path`` when complete, so
    an interrupted conversion never leaves a partial database there.
    """
    path = Path(path)
    if path.exists():
        raise DataError(f"cannot create LMDB '{path}': it already exists; delete it or choose "
                        "another path")
    with atomic_folder(path) as staging:
        return _fill_lmdb(staging, records, map_size)


def _fill_lmdb(path: Path, records: Iterable[tuple[bytes | str, Message | bytes]],
               map_size: int | None) -> int:
    """Write ``records`` into a new LMDB at ``path`` (LMDB syncs each commit to disk)."""
    env = lmdb.open(str(path), map_size=int(map_size or _INITIAL_MAP_SIZE), subdir=True,
                    meminit=False)
    count = 0
    try:
        pending: list[tuple[bytes, bytes]] = []
        for item in encoded(records):
            pending.append(item)
            if len(pending) >= _CHUNK:
                _commit(env, pending)
                count += len(pending)
                pending = []
        _commit(env, pending)
        count += len(pending)
    finally:
        env.close()
    return count


def lmdb_is_complete(path: Path, count: int, dataset: str) -> bool:
    """Whether ``path`` is an LMDB holding ``count`` records (False if absent); an incomplete
    one is an error naming it, so a conversion never builds on a half-written database."""
    if not path.exists():
        return False
    try:
        with lmdb.open(str(path), readonly=True, lock=False, subdir=path.is_dir()) as env:
            entries = env.stat()["entries"]
    except lmdb.Error:
        entries = None
    if entries != count:
        raise DataError(f"'{path}' exists but is not a complete {dataset} LMDB ({entries} "
                        f"records, expected {count}); delete it to convert again")
    return True


def _commit(env: lmdb.Environment, items: list[tuple[bytes, bytes]]) -> None:
    """Write ``items`` in one transaction, doubling the map size until they fit."""
    if not items:
        return
    while True:
        try:
            with env.begin(write=True) as txn:
                txn.cursor().putmulti(items)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


_ENVS = SharedHandles()  # one Environment per database per process


def _lock_file_writable(path: str, subdir: bool) -> bool:
    """Whether LMDB's lock file for ``path`` exists writable or can be created beside it
    (False on read-only media or a folder this user may not write)."""
    lock = os.path.join(path, "lock.mdb") if subdir else path + "-lock"
    if os.path.exists(lock):
        return os.access(lock, os.W_OK)
    return os.access(os.path.dirname(os.path.abspath(lock)), os.W_OK)


def _open_for_reading(path: str, where: str) -> lmdb.Environment:
    """Open ``path`` read-only with LMDB's lock table, as Caffe does: readers never block
    each other and a process writing meanwhile never reuses the pages they read. Without a
    lock file to write, read lock-free (safe only while nobody writes) and say so. A
    truncated data file is refused here, before any page of it is read."""
    subdir = os.path.isdir(path)
    lock = _lock_file_writable(path, subdir)
    if not lock:
        log.info(f"LMDB '{path}': its lock file cannot be created (read-only media?); reading "
                 "without locks, so no process may write this database meanwhile")
    env = lmdb.open(path, readonly=True, lock=lock, subdir=subdir)
    try:
        _require_whole_file(env, path, where)
    except BaseException:
        env.close()
        raise
    return env


def _require_whole_file(env: lmdb.Environment, path: str, where: str) -> None:
    """Refuse a data file shorter than the environment's last page (a partial copy): mapped,
    reading past its end kills the process with SIGBUS instead of raising."""
    data = os.path.join(path, "data.mdb") if os.path.isdir(path) else path
    needed = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    size = os.path.getsize(data)
    if size < needed:
        raise DataError(f"{where}: '{data}' is truncated ({size} bytes, but its pages reach "
                        f"{needed}); a partial copy? copy or convert the database again")


class LMDBSource(RecordSource):
    """Sequential reader over an LMDB in key order, wrapping around at the end.

    One thread at a time may use it (LMDB read transactions may move between threads).
    ``owner`` (e.g. ``"layer 'mnist' (Data)"``) prefixes every error message, and every LMDB
    failure (at open or while reading, in the prefetch thread too) is a DataError naming it.
    """

    _errors = (lmdb.Error,)

    def __init__(self, path: str | os.PathLike, owner: str = ""):
        self.path = str(path)
        self.where = (f"{owner}: " if owner else "") + f"LMDB '{self.path}'"
        self._closed = True  # until the database is open
        require_path(self.path, self.where)
        try:
            self._env = _ENVS.acquire(self.path,
                                      lambda: _open_for_reading(self.path, self.where))
        except lmdb.Error as e:
            raise DataError(f"{self.where} cannot be opened as an LMDB: {e}") from None
        try:
            self.entries = int(self._env.stat()["entries"])
            if self.entries == 0:
                raise DataError(f"{self.where} is empty; it holds no records")
            self._txn = self._env.begin(buffers=False)
            try:
                self._cursor = self._txn.cursor()
                self._cursor.first()
            except BaseException:
                self._txn.abort()
                raise
        except lmdb.Error as e:
            _ENVS.release(self.path)
            raise DataError(f"{self.where} cannot be read: {e}") from None
        except BaseException:
            _ENVS.release(self.path)
            raise
        log.info(f"Opened lmdb {self.path}")
        self.position = 0  # index (in key order) of the record the cursor is on
        self._closed = False

    def _failed(self, e: lmdb.Error) -> DataError:
        return DataError(f"{self.where}: reading failed at record {self.position}: {e}")

    def peek(self) -> tuple[bytes, bytes]:
        """The current record, without moving."""
        try:
            return self._cursor.key(), self._cursor.value()
        except lmdb.Error as e:
            raise self._failed(e) from None

    def read(self, count: int) -> list[tuple[bytes, bytes]]:
        """The next ``count`` records in key order, starting over after the last one."""
        cursor = self._cursor
        out = []
        try:
            for _ in range(count):
                out.append((cursor.key(), cursor.value()))
                self.position += 1
                if not cursor.next():
                    log.info("Restarting data prefetching from start.")
                    cursor.first()
                    self.position = 0
        except lmdb.Error as e:
            raise self._failed(e) from None
        return out

    def _rewind(self) -> None:
        self._cursor.first()
        self.position = 0

    def _step(self) -> None:
        self._cursor.next()

    def _release(self) -> None:
        try:
            self._txn.abort()
        finally:
            _ENVS.release(self.path)
