"""One open handle per database per process, shared by all its readers.

py-lmdb allows one open Environment per database per process, and LevelDB locks its folder
even against a second open in the same process; yet a TRAIN and a TEST Data layer (or two
nets) often read the same database. Readers acquire the handle by path and release it; the
last release closes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any


class SharedHandles:
    """Reference-counted handles keyed by the database's real path."""

    def __init__(self) -> None:
        self._entries: dict[str, list[Any]] = {}  # real path -> [handle, reader count]
        self._lock = threading.Lock()

    def acquire(self, path: str, open_handle: Callable[[], Any]) -> Any:
        """The open handle of ``path``, opening it with ``open_handle()`` if nobody has."""
        key = os.path.realpath(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [open_handle(), 0]
            entry[1] += 1
            return entry[0]

    def __len__(self) -> int:
        """How many databases are open."""
        return len(self._entries)

    def release(self, path: str) -> None:
        """One reader is done with ``path``; the last one closes the handle."""
        key = os.path.realpath(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[key]
                entry[0].close()
