"""A training log as a picture: losses (left axis) and accuracies (right axis) against the
iteration in the top panel, train as lines and test as points; the learning rate below.

matplotlib is optional (``brewnet[plot]``). The figure is drawn on an Agg canvas of its own,
so plotting neither needs a display nor changes the backend of a notebook's pyplot.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from ..errors import BrewnetError
from ..fileio import atomic_write
from .logparse import Row, TrainingLog

FORMATS = ("png", "svg", "pdf")
_X = {"iterations": ("NumIters", "iteration"), "seconds": ("Seconds", "seconds")}
_FIXED_COLUMNS = ("NumIters", "Seconds", "LearningRate")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401 - optional dependency
    except ImportError:
        raise BrewnetError("brewnet plot needs matplotlib: pip install 'brewnet[plot]'") \
            from None


def is_accuracy(name: str) -> bool:
    """Outputs named like accuracies (``accuracy``, ``acc_top5``...) go on the right axis."""
    return "acc" in name.lower()


def _series(rows: list[Row], x: str) -> dict[str, tuple[list[float], list[float]]]:
    """{output name: (xs, ys)} over the rows that have that output."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        for name, value in row.items():
            if name not in _FIXED_COLUMNS:
                xs, ys = series.setdefault(name, ([], []))
                xs.append(row[x])
                ys.append(value)
    return series


def _rates(log: TrainingLog, x: str) -> tuple[list[float], list[float]]:
    """The learning rate curve: every ``lr =`` line against iterations; the train rows'
    rates against seconds (lr lines carry no time of their own)."""
    if x == "NumIters" and log.rates:
        return [float(i) for i, _ in log.rates], [r for _, r in log.rates]
    points = [(row[x], row["LearningRate"]) for row in log.train
              if not math.isnan(row["LearningRate"])]
    return [p[0] for p in points], [p[1] for p in points]


def _wide_positive(values: list[float], ratio: float) -> bool:
    """All values positive and spanning more than ``ratio``: a log scale reads better."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) > ratio * min(finite)


def draw(log: TrainingLog, x: str = "iterations", title: str | None = None) -> Any:
    """The figure (a matplotlib Figure on an Agg canvas) for ``log``; ``x`` is
    ``"iterations"`` or ``"seconds"``. Losses spanning more than two decades, and rates more
    than one, are drawn on log scales; accuracies between 0 and 1 on a 0-1 axis."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    column, label = _X[x]
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax_loss = fig.add_subplot(grid[0])
    ax_lr = fig.add_subplot(grid[1], sharex=ax_loss)
    ax_acc = None
    handles, losses, accuracies = [], [], []
    # Train curves blue-ish, test losses red-ish, accuracies green-ish (tab10's order).
    palettes = {"train": iter(["C0", "C9", "C4", "C6"] * 25),
                "test": iter(["C3", "C1", "C5", "C8"] * 25),
                "accuracy": iter(["C2", "C8", "C7", "C5"] * 25)}
    for phase, rows in (("train", log.train), ("test", log.test)):
        for name, (xs, ys) in _series(rows, column).items():
            if is_accuracy(name):
                ax_acc = ax_acc or ax_loss.twinx()
                ax, colour = ax_acc, next(palettes["accuracy"])
                accuracies += ys
            else:
                ax, colour = ax_loss, next(palettes[phase])
                losses += ys
            style = {"linewidth": 1.0, "alpha": 0.85} if phase == "train" else \
                {"marker": "o", "markersize": 4, "linewidth": 1.5}
            handles += ax.plot(xs, ys, color=colour, label=f"{phase} {name}", **style)
    ax_loss.set_ylabel("loss")
    if _wide_positive(losses, 100):
        ax_loss.set_yscale("log")
    ax_loss.grid(True, alpha=0.3)
    if ax_acc is not None:
        ax_acc.set_ylabel("accuracy")
        if all(0 <= a <= 1 for a in accuracies if math.isfinite(a)):
            ax_acc.set_ylim(0, 1.02)
    ax_loss.set_title(title or "training log")
    if handles:
        fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4),
                   frameon=False)
    ax_loss.tick_params(labelbottom=False)
    xs, rates = _rates(log, column)
    ax_lr.plot(xs, rates, color="C7", drawstyle="steps-post", linewidth=1.2)
    if _wide_positive(rates, 10):
        ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel(label)
    ax_lr.grid(True, alpha=0.3)
    return fig


def save_plot(log: TrainingLog, out: str | os.PathLike, x: str = "iterations",
              title: str | None = None) -> None:
    """Draw ``log`` and write it to ``out`` (.png, .svg or .pdf, by its suffix) atomically."""
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise BrewnetError(f"{out}: cannot tell the image format from '{out.suffix}'; end the "
                           "name in " + ", ".join(f".{f}" for f in FORMATS))
    fig = draw(log, x, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    atomic_write(out, buffer.getvalue())
