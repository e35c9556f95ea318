"""atomic_write and atomic_folder: the target appears whole (a file with the umask's
permissions, or a database folder), and no temporary is left behind."""

import os
import stat

import pytest

from brewnet import fileio
from brewnet.data.lmdb_source import LMDBSource, write_lmdb
from brewnet.errors import BrewnetError
from brewnet.fileio import atomic_folder, atomic_write


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask(tmp_path, monkeypatch, mask):
    """A new file gets 0666 & ~umask, as open() would give it, not mkstemp's 0600."""
    monkeypatch.setattr(fileio, "_UMASK", mask)
    target = tmp_path / "weights.caffemodel"
    atomic_write(target, b"abc")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~mask
    assert target.read_bytes() == b"abc"


def test_umask_is_the_process_umask():
    """The cached umask is the one the process had, and reading it left it unchanged."""
    current = os.umask(0)
    os.umask(current)
    assert fileio._UMASK == current


def test_replaces_and_leaves_no_temporary(tmp_path, monkeypatch):
    """Writing over an existing file replaces it; a bare file name writes in the working
    folder; only the target remains."""
    monkeypatch.chdir(tmp_path)
    atomic_write("state.bin", b"old")
    atomic_write("state.bin", b"new")
    assert (tmp_path / "state.bin").read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["state.bin"]


def test_atomic_folder_appears_only_when_complete(tmp_path):
    """A database whose writing fails part-way leaves neither the target nor its staging
    folder; a complete one appears under its name with nothing else beside it."""
    def records(fail_at: int | None):
        for i in range(5):
            if i == fail_at:
                raise RuntimeError("interrupted")
            yield b"%03d" % i, b"value"

    with pytest.raises(RuntimeError):
        write_lmdb(tmp_path / "db", records(fail_at=3))
    assert os.listdir(tmp_path) == []
    assert write_lmdb(tmp_path / "db", records(fail_at=None)) == 5
    assert os.listdir(tmp_path) == ["db"]
    with LMDBSource(tmp_path / "db") as src:
        assert len(src) == 5


def test_atomic_folder_refuses_to_replace(tmp_path):
    """Renaming onto a folder that appeared meanwhile (and holds files) fails; the staging
    folder is still removed."""
    with pytest.raises(OSError):
        with atomic_folder(tmp_path / "db") as staging:
            staging.mkdir()
            (staging / "data").write_bytes(b"new")
            (tmp_path / "db").mkdir()
            (tmp_path / "db" / "other").write_bytes(b"old")
    assert sorted(os.listdir(tmp_path)) == ["db"]
    assert os.listdir(tmp_path / "db") == ["other"]


def test_missing_folder_is_named_not_the_temporary(tmp_path):
    """Writing into a folder that does not exist is a one-line BrewnetError naming the
    folder and the file, not an OSError about brewnet's hidden temporary file."""
    target = tmp_path / "nodir" / "net.onnx"
    with pytest.raises(BrewnetError, match="the folder .*nodir does not exist") as err:
        atomic_write(target, b"x")
    assert err.value.file == str(target) and ".tmp" not in str(err.value)
