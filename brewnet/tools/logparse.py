"""Training logs in glog format (brewnet's and Caffe's) into tables: the train and test rows
that Caffe's ``tools/extra/parse_log.py`` makes, and its CSV files byte for byte.

A row is ``NumIters, Seconds, LearningRate`` and then one column per output blob, all floats.
``Seconds`` counts from the line that says ``Solving``. ``LearningRate`` is the last
``lr = x`` seen before the row's first output: Caffe prints the rate of iteration N after
N's outputs, so a train row carries the rate of the previous display, and the first row
copies the second row's (Caffe's convention, kept so the CSV files match). The exact rate
of each iteration is in ``TrainingLog.rates``.

Where Caffe's script loses data, this parser keeps it: a log with a single display or test
still gives its row, two test nets with the same output names give a row each, and NaN or
infinite values are read rather than skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..fileio import atomic_write

_ITERATION = re.compile(r"Iteration (\d+)")
_OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = "
                     r"([-+]?(?:nan|inf)|[.\deE+-]+)")
_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+(?:[eE]?[-+]?[0-9]+)?)")
_STAMP = re.compile(r"^\s*[A-Z](\d\d)(\d+)\s+(\d+):(\d+):(\d+)\.(\d+)\s")

Row = dict[str, float]


@dataclass
class TrainingLog:
    """The tables of one training log: ``train`` and ``test`` rows (dicts in column order) and
    ``rates``, the (iteration, learning rate) of every ``Iteration N, lr = x`` line."""

    train: list[Row] = field(default_factory=list)
    test: list[Row] = field(default_factory=list)
    rates: list[tuple[int, float]] = field(default_factory=list)


class _Table:
    """Rows grown one output at a time. A row closes when its iteration changes, when an
    output repeats (another test net), or once it has as many columns as the first row."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.row: Row | None = None

    def add(self, iteration: int, seconds: float, rate: float, name: str, value: float) -> None:
        if self.row is None or self.row["NumIters"] != iteration or name in self.row:
            if self.row is not None:
                self.rows.append(self.row)
            self.row = {"NumIters": float(iteration), "Seconds": seconds, "LearningRate": rate}
        self.row[name] = value
        if self.rows and len(self.row) == len(self.rows[0]):
            self.rows.append(self.row)
            self.row = None

    def finish(self) -> list[Row]:
        """The rows, with a last one the log left incomplete dropped (a cut-off report)."""
        if self.row is not None and (not self.rows or len(self.row) == len(self.rows[0])):
            self.rows.append(self.row)
        self.row = None
        if len(self.rows) > 1:  # the first row predates any lr line: Caffe copies the next
            self.rows[0]["LearningRate"] = self.rows[1]["LearningRate"]
        return self.rows


def _timestamp(line: str, year: int) -> dt.datetime | None:
    """The time in a glog prefix ``Lmmdd hh:mm:ss.uuuuuu``; None for other lines."""
    m = _STAMP.match(line)
    if m is None:
        return None
    month, day, hour, minute, second, micros = (int(g) for g in m.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second, micros)
    except ValueError:
        return None


def parse_lines(lines: Iterable[str], year: int) -> TrainingLog:
    """Parse a log's lines; glog has no year in its timestamps, so ``year`` gives the first
    line's (a month that goes backwards moves to the next year)."""
    lines = list(lines)
    start_at = next((i for i, line in enumerate(lines) if "Solving" in line), None)
    start = _timestamp(lines[start_at], year) if start_at is not None else None
    body = lines[start_at + 1:] if start_at is not None else lines
    if start is None:  # no "Solving" line (a log cut at the top): count from the first stamp
        start = next((t for t in (_timestamp(line, year) for line in body) if t), None)
    train, test, result = _Table(), _Table(), TrainingLog()
    iteration: int | None = None
    rate = float("nan")
    last = start
    for line in body:
        m = _ITERATION.search(line)
        if m:
            iteration = int(m.group(1))
        if iteration is None:
            continue
        when = _timestamp(line, year)
        if when is None:
            continue
        if last is not None and when.month < last.month:  # the log crossed new year
            year += 1
            when = when.replace(year=year)
        last = when
        m = _RATE.search(line)
        if m:
            rate = float(m.group(1))
            result.rates.append((iteration, rate))
        m = _OUTPUT.search(line)
        if m:
            table = train if m.group(1) == "Train" else test
            seconds = (when - start).total_seconds() if start is not None else 0.0
            table.add(iteration, seconds, rate, m.group(2), float(m.group(3)))
    result.train, result.test = train.finish(), test.finish()
    return result


def parse_log(path: str | os.PathLike) -> TrainingLog:
    """Parse a training log file. The year of its timestamps is the file's creation (ctime)
    year, as Caffe's script assumes."""
    path = Path(path)
    try:
        year = dt.datetime.fromtimestamp(path.stat().st_ctime).year
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_lines(f, year)
    except FileNotFoundError:
        raise DataError(f"{path}: no such log file; give the file the training's stderr was "
                        "written to (brewnet solve ... 2> train.log)") from None


def csv_text(rows: list[Row], delimiter: str = ",") -> str:
    """Rows as Caffe's parse_log.py writes them: Excel dialect (CRLF line ends), a header of
    the column names in first-seen order, floats as Python prints them."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, dialect=csv.excel, delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv_files(log_path: str | os.PathLike, out_dir: str | os.PathLike, parsed: TrainingLog,
                    delimiter: str = ",") -> list[Path]:
    """Write ``<out_dir>/<log name>.train`` and ``.test`` (each only if it has rows, as Caffe)
    and return the paths written."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: no such folder; create it or give an existing one for "
                        "the CSV files")
    written = []
    for suffix, rows in ((".train", parsed.train), (".test", parsed.test)):
        if rows:
            path = out_dir / (Path(log_path).name + suffix)
            atomic_write(path, csv_text(rows, delimiter).encode("utf-8"))
            written.append(path)
    return written


def read_json_log(path: str | os.PathLike) -> TrainingLog:
    """The tables of a ``--log-json`` file, in the same shape as a parsed text log (outputs
    with several elements are left out: a table column holds one number)."""
    result = TrainingLog()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or "iteration" not in record:
                raise DataError(f"{path}:{number}: not a training record; give a file "
                                "written by brewnet solve --log-json")
            rate = record.get("lr")
            try:
                row = {"NumIters": float(record["iteration"]),
                       "Seconds": float(record.get("seconds", 0.0)),
                       "LearningRate": float("nan") if rate is None else float(rate)}
                for name, value in record.get("outputs", {}).items():
                    if not isinstance(value, list):
                        row[name] = float("nan") if value is None else float(value)
            except (AttributeError, TypeError, ValueError):
                raise DataError(f"{path}:{number}: a training record with a value that is not "
                                "a number; give a file written by brewnet solve --log-json") \
                    from None
            if record.get("kind") == "train":
                result.train.append(row)
                if rate is not None:
                    result.rates.append((int(record["iteration"]), float(rate)))
            elif record.get("kind") == "test":
                result.test.append(row)
    return result


def load_training_log(path: str | os.PathLike) -> TrainingLog:
    """A training log in either form: glog text (``2> train.log``) or ``--log-json`` lines,
    told apart by the first character."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(64).lstrip()
    except FileNotFoundError:
        raise DataError(f"{path}: no such log file; give the file the training's stderr was "
                        "written to (brewnet solve ... 2> train.log) or its --log-json file") \
            from None
    return read_json_log(path) if head.startswith("{") else parse_log(path)
