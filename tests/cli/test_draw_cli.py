"""``brewnet draw NET OUT``: Caffe's draw_net.py flags (--rankdir, --phase, --display_lrm), the
format from the extension, .dot without Graphviz, and failures as one line."""

import shutil
from pathlib import Path

import pytest

from brewnet.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
LENET_TRAIN_TEST = str(REPO / "examples" / "mnist" / "lenet_train_test.prototxt")
LENET_SOLVER = str(REPO / "examples" / "mnist" / "lenet_solver.prototxt")

pytest.importorskip("pydot")


def test_draw_dot_with_phase_rankdir_and_lrm(tmp_path, monkeypatch, capsys):
    """--phase TRAIN drops the TEST-only accuracy layer, --rankdir TB joins label words with
    spaces, --display_lrm (Caffe's spelling) adds the multipliers; Caffe's progress line."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "lenet.dot"
    assert cli.main(["draw", LENET_TRAIN_TEST, str(out), "--phase", "train", "--rankdir",
                     "TB", "--display_lrm"]) == 0
    text = out.read_text(encoding="utf-8")
    assert f"Drawing net to {out}" in capsys.readouterr().out
    assert "accuracy" not in text and "rankdir=TB" in text
    assert '"conv1 (Convolution) kernel size: 5 stride: 1 pad: 0 lr mult: 1, 2"' in text


def test_default_phase_is_all_and_solvers_draw_their_train_net(tmp_path, monkeypatch):
    """Without --phase every layer is drawn (Caffe's default ALL); a solver prototxt draws
    the net it trains, found from the repository root as Caffe resolves relative paths."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "solver.dot"
    assert cli.main(["draw", LENET_SOLVER, str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "accuracy" in text and "rankdir=LR" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_png(tmp_path, monkeypatch):
    """An .png extension renders through Graphviz."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "lenet.png"
    assert cli.main(["draw", LENET_TRAIN_TEST, str(out), "-phase=TEST"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_failures_are_one_line(tmp_path, capsys):
    """A missing net file exits 1 with one 'brewnet: error:' line naming it."""
    missing = tmp_path / "nope.prototxt"
    assert cli.main(["draw", str(missing), str(tmp_path / "x.dot")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brewnet: error:") and "nope.prototxt" in err[0]
