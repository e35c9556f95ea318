"""benchmarks.layers at tiny sizes: one row per LeNet layer, shares adding up to 100%."""

import re

import pytest

from benchmarks import layers


def test_quick_run_lists_every_lenet_layer(capsys):
    """The table names LeNet's nine TRAIN layers in order with forward and backward ms."""
    assert layers.main(["--quick"]) == 0
    rows = re.findall(r"^(\w+) +(\w+) +([0-9.]+) +([0-9.]+) +([0-9.]+)% +([0-9.]+)$",
                      capsys.readouterr().out, re.M)
    assert [r[0] for r in rows] == ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1",
                                    "relu1", "ip2", "loss"]
    assert sum(float(r[4]) for r in rows) == pytest.approx(100, abs=0.5)
