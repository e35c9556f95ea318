"""The training progress line: on a terminal, one line at the bottom that tracks the iteration,
the loss of the last display, images per second and the time left, with the log lines
printed above it; and a plain counting bar for the dataset tools. Through tqdm
(``brewnet[progress]``); without tqdm, or when stderr is a file or a pipe, the plain log lines
only, so logs stay parseable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
        self._replaced = _route_logs(self._bar, stream)
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
        _unroute_logs(self._replaced)


def _route_logs(bar: Any, stream: IO[str]) -> list[logging.Handler]:
    """Send brewnet's log handlers that write to ``stream`` through ``bar``; returns them."""
    logger = get_logger()
    replaced = [h for h in logger.handlers if type(h) is logging.StreamHandler
                and h.stream is stream]
    for handler in replaced:
        logger.removeHandler(handler)
        logger.addHandler(_AboveBar(bar, stream, handler))
    return replaced


def _unroute_logs(replaced: list[logging.Handler]) -> None:
    """Give back the handlers ``_route_logs`` replaced."""
    logger = get_logger()
    for handler in [h for h in logger.handlers if isinstance(h, _AboveBar)]:
        logger.removeHandler(handler)
    for handler in replaced:
        logger.addHandler(handler)


def _can_draw(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal and tqdm is installed."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return False
    try:
        import tqdm  # noqa: F401 - optional dependency
    except ImportError:
        return False
    return True


def progress_line(solver: Any, stream: IO[str],
                  images_per_iter: int | None) -> ProgressLine | None:
    """A ProgressLine when ``stream`` is a terminal and tqdm is installed; else None (plain
    log lines)."""
    return ProgressLine(solver, stream, images_per_iter) if _can_draw(stream) else None


@contextmanager
def counting_bar(total: int, stream: IO[str], unit: str) -> Iterator[Any | None]:
    """A tqdm bar counting ``unit`` up to ``total`` on a terminal, log lines printed above
    it, for the dataset tools; None when ``stream`` is not a terminal or tqdm is missing (the
    caller then logs Caffe's plain progress lines)."""
    if not _can_draw(stream):
        yield None
        return
    from tqdm import tqdm  # optional dependency

    size = {"dynamic_ncols": True} if _sized(stream) else {"ncols": 100, "nrows": 24}
    bar = tqdm(total=total, file=stream, unit=f" {unit}", leave=True, **size)
    replaced = _route_logs(bar, stream)
    try:
        yield bar
    finally:
        bar.close()
        _unroute_logs(replaced)
