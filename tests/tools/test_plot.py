"""Plotting a training log: losses on the left axis, accuracy on a second axis, learning rate
in a panel below; matplotlib optional (one-line error without it)."""

from __future__ import annotations

import sys

import pytest

from brewnet.errors import BrewnetError
from brewnet.tools.logparse import parse_log
from brewnet.tools.plot import draw, is_accuracy, save_plot
from tests.tools.tiny import train_tiny


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory):
    return parse_log(train_tiny(tmp_path_factory.mktemp("tiny")))


def test_figure_has_loss_accuracy_and_rate_panels(tiny_log):
    """Train loss and test loss share the loss axis, test accuracy has its own (twin) axis,
    and the learning rate steps down in the lower panel (a span of 4x stays on a linear
    scale; a wider one goes logarithmic)."""
    pytest.importorskip("matplotlib")
    fig = draw(tiny_log, title="tiny")
    loss_ax, rate_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train loss", "test loss"]
    assert [line.get_label() for line in acc_ax.get_lines()] == ["test accuracy"]
    assert acc_ax.get_ylabel() == "accuracy" and rate_ax.get_ylabel() == "learning rate"
    xs, rates = rate_ax.get_lines()[0].get_data()
    assert list(xs) == [0, 2, 4, 6, 8, 10]
    assert list(rates) == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert rate_ax.get_yscale() == "linear"
    train_x, _ = loss_ax.get_lines()[0].get_data()
    assert list(train_x) == [0, 2, 4, 6, 8, 10]


def test_png_and_svg_are_written(tiny_log, tmp_path):
    """The image format follows the suffix; the file is a real PNG / SVG."""
    pytest.importorskip("matplotlib")
    save_plot(tiny_log, tmp_path / "log.png")
    assert (tmp_path / "log.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_plot(tiny_log, tmp_path / "log.svg", x="seconds")
    assert b"<svg" in (tmp_path / "log.svg").read_bytes()[:400]
    with pytest.raises(BrewnetError, match=r"log.gif: .* end the name in .png, .svg, .pdf"):
        save_plot(tiny_log, tmp_path / "log.gif")


def test_without_matplotlib_a_one_line_error(tiny_log, tmp_path, monkeypatch):
    """Without matplotlib, the error names the extra to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(BrewnetError, match=r"pip install 'brewnet\[plot\]'"):
        save_plot(tiny_log, tmp_path / "log.png")


def test_accuracy_outputs_are_told_by_name():
    """accuracy, acc_top5 and top1_acc go on the accuracy axis; losses do not."""
    assert all(map(is_accuracy, ["accuracy", "acc_top5", "loss3/top1_acc"]))
    assert not any(map(is_accuracy, ["loss", "loss3/loss3", "mse"]))
