"""atomic_write: the target appears whole, with the umask's permissions, and no temporary
file is left behind."""

import os
import stat

import pytest

from brewnet import fileio
from brewnet.fileio import atomic_write


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
