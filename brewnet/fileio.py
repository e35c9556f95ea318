"""Files written so that a crash at any moment leaves the old version or the new one.

Every regular file brewnet writes (snapshots, weights, prototxts, IDX files) goes through
``atomic_write``: a temporary file in the same folder, fsync, then rename over the target.
Databases (LMDB, LevelDB folders) are built under a temporary name by ``atomic_folder`` and
renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BrewnetError


def _read_umask() -> int:
    """The process umask (the only way to read it is to set it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: os.umask briefly changes process state, so not on every write.
_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temporary file, fsync, rename).

    The file gets the permissions ``open()`` would give it (0666 less the umask), not the
    0600 of the temporary file.
    """
    path = Path(path)
    folder = path.parent  # Path("x").parent is Path("."), never empty
    if not folder.is_dir():
        raise BrewnetError(f"cannot write {path}: the folder {folder} does not exist; create "
                           "it or choose another path", file=str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)  # make the rename itself durable


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Build a new folder (an LMDB or LevelDB database) under a temporary name in the same
    parent, then rename it to ``path``, so a crash never leaves a partial database under
    the real name. ``path`` must not exist; the staging folder is removed on failure."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = staging / path.name  # the database tools create the folder themselves
    try:
        yield target
        os.rename(target, path)  # atomic; fails if a file or non-empty folder appeared there
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the OS allows opening folders)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
