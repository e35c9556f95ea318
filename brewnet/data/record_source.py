"""What the LMDB and LevelDB modules share: records as bytes, seeking by index, closing.

Each database module says how its cursor rewinds, steps and lets go; the index arithmetic and
the lifetime live here once, so both backends seek, count and release their handles alike.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import TypeVar

from google.protobuf.message import Message

from ..errors import DataError

_Source = TypeVar("_Source", bound="RecordSource")


def encoded(records: Iterable[tuple[bytes | str, Message | bytes]]
            ) -> Iterator[tuple[bytes, bytes]]:
    """Each (key, value) as the bytes a database stores: a str key encoded, a Datum (or any
    message) serialized, as Caffe's convert tools put them."""
    for key, value in records:
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, Message):
            value = value.SerializeToString()
        yield key, value


def require_path(path: str, where: str) -> None:
    """A DataError naming ``where`` if ``path`` is missing, with the folder a relative path
    was resolved from (the usual cause: running from another directory than Caffe's)."""
    if not os.path.exists(path):
        raise DataError(f"{where} does not exist (relative paths are resolved from the "
                        f"working directory {os.getcwd()})")


class RecordSource(ABC):
    """A reader of a database's records in key order; ``position`` is the current record's
    index, and ``_errors`` the backend's failures while moving (each becomes ``_failed``)."""

    entries: int
    position: int
    _closed: bool
    _errors: tuple[type[BaseException], ...]

    @abstractmethod
    def _failed(self, e: BaseException) -> DataError:
        """The DataError for a backend failure at the current record."""

    @abstractmethod
    def _rewind(self) -> None:
        """Go to the first record and set ``position`` to 0."""

    @abstractmethod
    def _step(self) -> None:
        """Go to the next record, without wrapping (the caller counts ``position``)."""

    @abstractmethod
    def _release(self) -> None:
        """Let go of the read transaction or snapshot and the shared database handle."""

    def __len__(self) -> int:
        return self.entries

    def seek(self, index: int) -> None:
        """Put the reader on record ``index`` (modulo the record count) in key order."""
        index %= self.entries
        try:
            if index < self.position:
                self._rewind()
            for _ in range(index - self.position):
                self._step()
                self.position += 1
        except self._errors as e:
            raise self._failed(e) from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self: _Source) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
