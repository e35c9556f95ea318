"""``brewnet train`` on a diverging run: exit status 1 with one line naming the iteration and
the layer, no snapshot after the divergence; ``--on-divergence continue`` trains to max_iter
and exits 0, as Caffe would."""

from __future__ import annotations

import pytest

from brewnet.cli.main import main
from tests.solver.test_divergence import NET

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SOLVER = """
net: "net.prototxt"
base_lr: 1e10 lr_policy: "fixed" momentum: 0
display: 1 max_iter: 5 snapshot: 1 snapshot_prefix: "snap/s"
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The tiny net whose loss overflows at iteration 2 with lr 1e10, and its solver."""
    (tmp_path / "net.prototxt").write_text(NET.format(x="1", extra=""))
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    (tmp_path / "snap").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_divergence_exits_nonzero_with_one_line(workdir, capsys):
    """Default (stop): exit 1, a single error line naming iteration 2 and layer 'loss', the
    kept snapshot, and nothing written after iteration 2."""
    assert main(["train", "-solver=solver.prototxt"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "brewnet:" in line]
    assert len(errors) == 1
    line = errors[0]
    assert line.startswith("brewnet: error: training diverged at iteration 2: the loss is inf")
    assert "layer 'loss' (EuclideanLoss)" in line and "snap/s_iter_2.solverstate" in line
    assert sorted(p.name for p in (workdir / "snap").iterdir()) == [
        "s_iter_1.caffemodel", "s_iter_1.solverstate",
        "s_iter_2.caffemodel", "s_iter_2.solverstate"]


@pytest.mark.parametrize("flag", [["--on-divergence", "continue"], ["-on_divergence=continue"]])
def test_continue_trains_to_max_iter(workdir, capsys, flag):
    """--on-divergence continue (or Caffe's spelling -on_divergence=continue): exit 0 and the
    snapshot of iteration 5 is written."""
    assert main(["train", "--solver", "solver.prototxt", *flag]) == 0
    assert (workdir / "snap" / "s_iter_5.caffemodel").is_file()
    assert "brewnet: error" not in capsys.readouterr().err
