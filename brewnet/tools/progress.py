"""The training progress line: on a terminal, one line at the bottom that tracks the iteration,
the loss of the last display, images per second and the time left, with the log lines
printed above it. Through tqdm (``brewnet[progress]``); without tqdm, or when stderr is a
file or a pipe, training prints the plain log lines only, so logs stay parseable.
"""

from __future__ import annotations

import logging
import os
from typing import IO, Any

from ..log import get_logger
from ..solver.report import num

_FORMAT = "Iteration {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}]{postfix}"


def _sized(stream: IO[str]) -> bool:
    """Whether the terminal reports its size (tqdm draws nothing on a 0x0 one)."""
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return columns > 0 and lines > 0


class _AboveBar(logging.Handler):
    """Writes log records through tqdm so they scroll above the line instead of breaking it."""

    def __init__(self, bar: Any, stream: IO[str], replaced: logging.Handler):
        super().__init__(replaced.level)
        self.setFormatter(replaced.formatter)
        self._bar, self._stream = bar, stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._bar.write(self.format(record), file=self._stream)
        except Exception:  # logging must not raise; report as logging does
            self.handleError(record)


class ProgressLine:
    """A tqdm line following ``solver`` on ``stream`` until ``close()``. While it is open, the
    brewnet log handlers that write to ``stream`` print through it. ``images_per_iter``:
    images in one iteration (batch × iter_size), for images/s; None to show iterations/s."""

    def __init__(self, solver: Any, stream: IO[str], images_per_iter: int | None):
        from tqdm import tqdm  # optional dependency

        self._solver, self._images = solver, images_per_iter
        self._loss = ""
        # A terminal that reports no size (a fresh pseudo-terminal) gets a fixed one.
        size = {"dynamic_ncols": True} if _sized(stream) else {"ncols": 100, "nrows": 24}
        self._bar = tqdm(total=solver.param.max_iter, initial=solver.iter, file=stream,
                         bar_format=_FORMAT, leave=True, **size)
        logger = get_logger()
        self._replaced = [h for h in logger.handlers if type(h) is logging.StreamHandler
                          and h.stream is stream]
        for handler in self._replaced:
            logger.removeHandler(handler)
            logger.addHandler(_AboveBar(self._bar, stream, handler))
        solver.add_callback(self._tick, lambda: None)
        solver.add_reporter(self._on_report)

    def _tick(self) -> None:
        """Before each iteration: move to the solver's count and refresh the rates."""
        bar = self._bar
        bar.update(self._solver.iter - bar.n)
        info = bar.format_dict
        rate = info.get("rate")  # tqdm's smoothed rate; None until its first refresh
        if rate is None and info.get("elapsed"):
            rate = (bar.n - bar.initial) / info["elapsed"]
        parts = [self._loss] if self._loss else []
        if rate is not None:
            parts.append(f"{rate * self._images:,.0f} images/s" if self._images
                         else f"{rate:.1f} iter/s")
        bar.set_postfix_str(", ".join(parts), refresh=False)

    def _on_report(self, record: dict[str, Any]) -> None:
        if record["kind"] == "train":
            self._loss = f"loss = {num(record['loss'])}"

    def close(self) -> None:
        """Show the final count, end the line and give the log handlers back."""
        self._bar.update(self._solver.iter - self._bar.n)
        self._bar.close()
        logger = get_logger()
        for handler in [h for h in logger.handlers if isinstance(h, _AboveBar)]:
            logger.removeHandler(handler)
        for handler in self._replaced:
            logger.addHandler(handler)


def progress_line(solver: Any, stream: IO[str],
                  images_per_iter: int | None) -> ProgressLine | None:
    """A ProgressLine when ``stream`` is a terminal and tqdm is installed; else None (plain
    log lines)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return None
    try:
        import tqdm  # noqa: F401 - optional dependency
    except ImportError:
        return None
    return ProgressLine(solver, stream, images_per_iter)
