"""Files written so that a crash at any moment leaves the old version or the new one.

Every regular file brewnet writes (snapshots, weights, prototxts, IDX files) goes through
``atomic_write``: a temporary file in the same folder, fsync, then rename over the target.
LMDB databases are the exception: ``write_lmdb`` builds a new folder through LMDB's own
transactions, and refuses to write into an existing one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
