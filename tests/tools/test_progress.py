"""The training progress line: on a terminal, one tqdm line with the iteration, the loss of
the last display, images/s and the time left, with log lines printed above it; plain log
lines when stderr is not a terminal or tqdm is missing."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from brewnet.log import get_logger
from brewnet.solver import get_solver
from brewnet.tools.progress import ProgressLine, progress_line
from tests.tools.tiny import write_tiny


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_plain_log_lines_when_not_a_terminal_or_without_tqdm(tmp_path, monkeypatch):
    """A file or pipe gets no progress line; neither does a terminal without tqdm."""
    solver = get_solver(write_tiny(tmp_path))
    try:
        assert progress_line(solver, io.StringIO(), 8) is None
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
        assert progress_line(solver, Terminal(), 8) is None
    finally:
        solver.close()


def test_terminal_gets_a_progress_line_and_log_lines_above_it(tmp_path):
    """The line counts to max_iter and shows the last display's loss, images/s and the time
    left; brewnet's log lines to that stream go through tqdm while it is open, and the
    handlers are given back at close."""
    pytest.importorskip("tqdm")
    stream = Terminal()
    logger = get_logger()
    console = logging.StreamHandler(stream)
    logger.addHandler(console)
    solver = get_solver(write_tiny(tmp_path))
    try:
        line = progress_line(solver, stream, images_per_iter=8)
        assert isinstance(line, ProgressLine)
        assert console not in logger.handlers  # replaced while the line is open
        solver.solve()
        line.close()
        assert console in logger.handlers  # given back
        assert not any(type(h).__name__ == "_AboveBar" for h in logger.handlers)
    finally:
        solver.close()
        logger.removeHandler(console)
    text = stream.getvalue()
    assert "Iteration 12/12" in text
    assert "loss = " in text and "images/s" in text
    assert "<00:00]" in text  # elapsed<remaining
    assert "Optimization Done." in text  # a log line, written through tqdm


def test_counting_bar_for_the_dataset_tools(monkeypatch):
    """counting_bar: None off a terminal (the tools then log Caffe's lines); on one, a bar
    counting to its total with log lines printed above it, handlers given back after."""
    from brewnet.tools.progress import counting_bar
    with counting_bar(5, io.StringIO(), "images") as bar:
        assert bar is None
    pytest.importorskip("tqdm")
    stream = Terminal()
    logger = get_logger()
    console = logging.StreamHandler(stream)
    logger.addHandler(console)
    try:
        with counting_bar(5, stream, "images") as bar:
            assert console not in logger.handlers
            bar.update(5)
            logger.warning("skipped one")
        assert console in logger.handlers
    finally:
        logger.removeHandler(console)
    text = stream.getvalue()
    assert "5/5" in text and "images" in text and "skipped one" in text
