"""The per-GPU launcher's watch over its ranks, with plain Python processes standing in for
GPU ranks: a rank that dies ends the others at once and is named with its cause."""

from __future__ import annotations

import os
import sys
import time

import pytest

from brewnet.errors import BrewnetError
from brewnet.parallel import launch
from brewnet.parallel.nccl import UID_BYTES, nccl_module, require_nccl, uid_from_hex

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def run(*commands):
    envs = [dict(os.environ)] * len(commands)
    return launch.run_ranks(commands, envs, [f"rank {r}" for r in range(len(commands))])


def test_all_ranks_succeed():
    ok = [sys.executable, "-c", "pass"]
    assert run(ok, ok) == 0


@pytest.mark.parametrize(("dies", "cause"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
     "killed by signal 9 (SIGKILL)"),
    ("raise SystemExit(3)", "exit status 3"),
])
def test_a_dead_rank_ends_the_others_and_is_named(caplog, dies, cause):
    began = time.monotonic()
    with caplog.at_level("ERROR", logger="brewnet"):
        assert run(SLEEPER, [sys.executable, "-c", dies]) == 1
    assert time.monotonic() - began < launch.GRACE_S
    assert f"rank 1 failed ({cause}); ending the other ranks" in caplog.text


def test_nccl_is_not_usable_here_and_says_so():
    """No GPU on this machine: has_nccl() is False and asking for NCCL is one clear error."""
    if nccl_module() is not None:
        pytest.skip("CuPy with NCCL and a GPU are present")
    with pytest.raises(BrewnetError, match="needs CuPy with NCCL"):
        require_nccl()


def test_uid_travels_as_hex():
    uid = bytes(range(UID_BYTES))
    assert uid_from_hex(uid.hex()) == uid
    with pytest.raises(BrewnetError, match="128 bytes"):
        uid_from_hex("abc")
