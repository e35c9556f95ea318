"""``brewnet solve --gpu 0,1``: one process per GPU, as Caffe trains on several GPUs. The
launcher makes the NCCL unique id, starts the ranks with it in their environment, forwards
SIGINT/SIGHUP to them and watches them: when one fails (an error or a signal such as kill
-9) it names the rank and the cause and ends the others, so the job never hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from ..log import log
from .world import UID_VARIABLE

POLL_S = 0.2
GRACE_S = 10.0  # after a failure, how long the others get to exit before SIGKILL


def describe_exit(code: int) -> str:
    """``exit status 1`` or ``killed by signal 9 (SIGKILL)``, from a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code} ({name})"
    return f"exit status {code}"


def run_ranks(commands: Sequence[Sequence[str]], envs: Sequence[dict[str, str]],
              names: Sequence[str]) -> int:
    """Run one process per command, each with its environment; return 0 when all succeed,
    else 1 after ending the rest (the first failure is logged, naming ``names[i]``)."""
    procs = [subprocess.Popen(list(cmd), env=env, start_new_session=True)
             for cmd, env in zip(commands, envs, strict=True)]

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    forwarded = [signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None:
                log.error(f"{names[failed]} failed ({describe_exit(codes[failed])}); "
                          "ending the other ranks")
                _end(procs)
                return 1
            if all(c == 0 for c in codes):
                return 0
            time.sleep(POLL_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _end(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM every process still running, SIGKILL those still there after GRACE_S."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + GRACE_S
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch_per_gpu(gpus: Sequence[int], argv: Sequence[str], uid: bytes) -> int:
    """Run ``brewnet <argv>`` once per GPU, rank r on ``gpus[r]``, all joined by ``uid``."""
    log.info(f"Starting {len(gpus)} ranks, one per GPU: {','.join(map(str, gpus))}")
    base = {**os.environ, "BREWNET_WORLD_SIZE": str(len(gpus)), UID_VARIABLE: uid.hex()}
    envs = [{**base, "BREWNET_RANK": str(r)} for r in range(len(gpus))]
    command = [sys.executable, "-m", "brewnet", *argv]
    return run_ranks([command] * len(gpus), envs,
                     [f"rank {r} (GPU {g})" for r, g in enumerate(gpus)])
