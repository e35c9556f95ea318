"""LevelDB databases of Datum records: Caffe's default Data-layer backend, read through plyvel.

plyvel is optional (``pip install 'brewnet[leveldb]'``) and imported only when a LevelDB is
opened or written. The reader offers DatumFeed what LMDBSource does: records in key order from
one snapshot, wrapping at the end, and seeking to any record index. LevelDB keeps no record
count, so the reader counts once when it opens the database.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from google.protobuf.message import Message

from ..errors import DataError
from ..fileio import atomic_folder
from ..log import log
from .record_source import RecordSource, encoded, require_path
from .shared_handles import SharedHandles

_WRITE_CHUNK = 1000  # records per write batch


def _plyvel(owner: str) -> ModuleType:
    """The plyvel module, or a DataError naming ``owner`` and the install command."""
    try:
        import plyvel
    except ImportError:
        raise DataError(f"{owner}: reading LevelDB needs plyvel, which is not installed; run "
                        "pip install 'brewnet[leveldb]' (or convert the data to an LMDB and "
                        "set `backend: LMDB`)") from None
    return plyvel


def write_leveldb(path: str | os.PathLike,
                  records: Iterable[tuple[bytes | str, Message | bytes]]) -> int:
    """Create the LevelDB folder ``path`` holding ``records`` (key, Datum or serialized bytes).

    Returns the number of records written. ``path`` must not exist yet (as Caffe's tools);
    the database is built under a temporary name and renamed to ``path`` when complete.
    """
    path = Path(path)
    where = f"LevelDB '{path}'"
    plyvel = _plyvel(f"cannot create {where}")
    if path.exists():
        raise DataError(f"cannot create {where}: it already exists; delete it or choose another "
                        "path")
    with atomic_folder(path) as staging:
        return _fill_leveldb(plyvel, staging, records)


def _fill_leveldb(plyvel: ModuleType, path: Path,
                  records: Iterable[tuple[bytes | str, Message | bytes]]) -> int:
    """Write ``records`` into a new LevelDB at ``path`` in synced batches (so the data is on
    disk before the folder is renamed into place)."""
    db = plyvel.DB(str(path), create_if_missing=True, error_if_exists=True)
    count = 0
    try:
        batch = db.write_batch(sync=True)
        pending = 0
        for key, value in encoded(records):
            batch.put(key, value)
            pending += 1
            if pending >= _WRITE_CHUNK:
                batch.write()
                count += pending
                batch, pending = db.write_batch(sync=True), 0
        batch.write()
        count += pending
    finally:
        db.close()
    return count


_DBS = SharedHandles()  # LevelDB locks its folder: one handle per database per process


def _text(e: Exception) -> str:
    """plyvel's message (it carries bytes) as text."""
    arg = e.args[0] if e.args else e
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


class LevelDBSource(RecordSource):
    """Sequential reader over a LevelDB in key order, wrapping around at the end.

    Reads come from one snapshot taken at open, so the record count stays true. One thread at
    a time may use it. ``owner`` (e.g. ``"layer 'mnist' (Data)"``) prefixes every error
    message, and every LevelDB failure (at open or while reading) is a DataError naming it.
    """

    def __init__(self, path: str | os.PathLike, owner: str = ""):
        self.path = str(path)
        self.where = (f"{owner}: " if owner else "") + f"LevelDB '{self.path}'"
        self._closed = True  # until the database is open
        plyvel = _plyvel(owner or self.where)
        self._errors = (plyvel.Error, StopIteration)
        require_path(self.path, self.where)
        try:
            self._db = _DBS.acquire(self.path,
                                    lambda: plyvel.DB(self.path, create_if_missing=False))
        except plyvel.Error as e:
            raise DataError(f"{self.where} cannot be opened as a LevelDB: {_text(e)}") from None
        try:
            self._snapshot = self._db.snapshot()
            self.entries = sum(1 for _ in self._snapshot.iterator(include_value=False))
            if self.entries == 0:
                raise DataError(f"{self.where} is empty; it holds no records")
            self._rewind()
        except plyvel.Error as e:
            _DBS.release(self.path)
            raise DataError(f"{self.where} cannot be read: {_text(e)}") from None
        except BaseException:
            _DBS.release(self.path)
            raise
        log.info(f"Opened leveldb {self.path}")
        self._closed = False

    def _failed(self, e: Exception) -> DataError:
        return DataError(f"{self.where}: reading failed at record {self.position}: {_text(e)}")

    def _rewind(self) -> None:
        """Start a fresh iterator on the first record (plyvel iterators only move forward)."""
        self._iter = self._snapshot.iterator()
        self._current = next(self._iter)
        self.position = 0  # index (in key order) of the current record

    def _advance(self) -> None:
        """Move to the next record, wrapping to the first after the last."""
        try:
            self._current = next(self._iter)
            self.position += 1
        except StopIteration:
            log.info("Restarting data prefetching from start.")
            self._rewind()

    def peek(self) -> tuple[bytes, bytes]:
        """The current record, without moving."""
        return self._current

    def read(self, count: int) -> list[tuple[bytes, bytes]]:
        """The next ``count`` records in key order, starting over after the last one."""
        out = []
        try:
            for _ in range(count):
                out.append(self._current)
                self._advance()
        except self._errors as e:
            raise self._failed(e) from None
        return out

    def _step(self) -> None:
        self._current = next(self._iter)

    def _release(self) -> None:
        try:
            self._iter.close()
            self._snapshot.close()
        finally:
            _DBS.release(self.path)
