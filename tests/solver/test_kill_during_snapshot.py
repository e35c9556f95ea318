"""A training process killed with SIGKILL at random moments, while it snapshots every
iteration, leaves only whole snapshot files: every .caffemodel parses and loads, every
.solverstate restores, a half-written file never appears under a snapshot's name, and
training resumes from the latest snapshot."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brewnet.net.weights import blobproto_to_array
from brewnet.proto.binaryio import read_net_binary
from brewnet.proto.textio import read_solver
from brewnet.solver import get_solver
from brewnet.solver import snapshot as snap

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 4
ROUND_TIMEOUT_S = 30.0  # a round that never sees a snapshot fails instead of hanging

# 256 inputs x 1500 outputs: ~1.5 MB per file, so a snapshot takes long enough for kills to
# land inside it.
SOLVER = """
net_param {{
  name: "tiny"
  layer {{ name: "data"  type: "DummyData"  top: "data"  top: "label"
    dummy_data_param {{ shape {{ dim: 4 dim: 256 }}  shape {{ dim: 4 }}
                       data_filler {{ type: "gaussian" std: 1 }}
                       data_filler {{ type: "constant" value: 3 }} }} }}
  layer {{ name: "ip"  type: "InnerProduct"  bottom: "data"  top: "ip"
    inner_product_param {{ num_output: 1500  weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
  layer {{ name: "loss"  type: "SoftmaxWithLoss"  bottom: "ip"  bottom: "label"  top: "loss" }}
}}
base_lr: 0.01  momentum: 0.9  lr_policy: "fixed"
max_iter: {max_iter}
snapshot: 1
snapshot_after_train: false
snapshot_prefix: "{prefix}"
random_seed: 1
solver_mode: CPU
"""

SNAPSHOT = re.compile(r"^s_iter_(\d+)\.(caffemodel|solverstate)$")


def _write_solver(folder: Path, name: str, max_iter: int) -> Path:
    path = folder / name
    path.write_text(SOLVER.format(max_iter=max_iter, prefix=folder / "snap" / "s"))
    return path


def _start(solver: Path, resume: Path | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "brewnet", "solve", "--solver", str(solver)]
    if resume is not None:
        cmd += ["--snapshot", str(resume)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=solver.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _snapshots(folder: Path) -> dict[int, set[str]]:
    """Iteration -> extensions present; anything else in the folder must be a hidden
    temporary file (the remains of a killed write) or the start-up write probe (Caffe's
    ``<prefix>_iter_0.tempfile``, written and deleted before training), never a name a
    snapshot could have."""
    found: dict[int, set[str]] = {}
    for name in os.listdir(folder):
        m = SNAPSHOT.match(name)
        if m:
            found.setdefault(int(m.group(1)), set()).add(m.group(2))
        elif name != "s_iter_0.tempfile":
            assert name.startswith(".") and name.endswith(".tmp"), name
    return found


def _check_model(path: Path) -> None:
    """The .caffemodel parses and holds every parameter whole."""
    net = read_net_binary(path)
    ip = next(lp for lp in net.layer if lp.name == "ip")
    assert [blobproto_to_array(bp).shape for bp in ip.blobs] == [(1500, 256), (1500,)]


def _check_state(path: Path, iteration: int) -> None:
    state = snap.read_state(path)
    assert state.iter == iteration
    assert len(state.history) == 2
    for bp in state.history:
        blobproto_to_array(bp)


def test_sigkill_during_snapshots_leaves_whole_files_and_resumes(tmp_path):
    """Caffe fact kept and improved: snapshots go to <prefix>_iter_N.caffemodel/.solverstate;
    brewnet writes each through a temporary file + fsync + rename, so a SIGKILL at any moment
    leaves the previous file or the new one, and the latest state always resumes."""
    (tmp_path / "snap").mkdir()
    folder = tmp_path / "snap"
    endless = _write_solver(tmp_path, "solver.prototxt", max_iter=10**6)
    rnd = random.Random(0)
    latest_state: Path | None = None
    checked: set[Path] = set()
    for _ in range(ROUNDS):
        before = len(_snapshots(folder))
        proc = _start(endless, latest_state)
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        try:
            while len(_snapshots(folder)) <= before:  # wait for training to snapshot
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "no snapshot written"
                time.sleep(0.02)
            time.sleep(rnd.uniform(0.0, 0.6))  # then kill at a random moment
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        found = _snapshots(folder)
        for it, exts in sorted(found.items()):
            for ext in exts:
                path = folder / f"s_iter_{it}.{ext}"
                if path in checked:
                    continue
                if ext == "caffemodel":
                    _check_model(path)
                else:
                    _check_state(path, it)
                    # the model a state names was renamed into place before the state
                    assert "caffemodel" in exts
                checked.add(path)
        states = [it for it, exts in found.items() if "solverstate" in exts]
        latest_state = folder / f"s_iter_{max(states)}.solverstate"

    # resume in this process: weights, history and iteration come back
    solver = get_solver(read_solver(endless), source=str(endless))
    try:
        solver.restore(latest_state)
        resumed_at = solver.iter
    finally:
        solver.close()
    assert latest_state.name == f"s_iter_{resumed_at}.solverstate"

    # and through the CLI, to completion
    final = _write_solver(tmp_path, "final.prototxt", max_iter=resumed_at + 2)
    proc = _start(final, latest_state)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the resumed run did not finish")
    assert proc.returncode == 0, err.decode()
    _check_state(folder / f"s_iter_{resumed_at + 2}.solverstate", resumed_at + 2)
