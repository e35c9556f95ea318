"""benchmarks.inference at tiny sizes: both deploy nets run in both frameworks and agree."""

import re

import pytest

from benchmarks import inference


def test_quick_run_agrees_with_the_peer(capsys):
    """LeNet and CaffeNet: the PyTorch twin's outputs match brewnet's (max |diff| tiny) and
    each row has both rates and their ratio."""
    pytest.importorskip("torch")
    assert inference.main(["--quick"]) == 0
    rows = re.findall(r"^(lenet|caffenet) +2 +([0-9.]+) +([0-9.]+) +([0-9.]+)x +(\S+)$",
                      capsys.readouterr().out, re.M)
    assert [r[0] for r in rows] == ["lenet", "caffenet"]
    assert all(float(r[4]) < 1e-5 for r in rows)


def test_runs_without_torch(monkeypatch, capsys):
    """Without torch only brewnet is timed; the peer columns show '-'."""
    monkeypatch.setattr(inference, "torch_or_none", lambda threads: None)
    assert inference.main(["--quick", "--nets", "lenet"]) == 0
    assert re.search(r"^lenet +2 +[0-9.]+ +- +- +-$", capsys.readouterr().out, re.M)
