"""Training logs into tables: Caffe's parse_log.py (its regexes and row rules, as
caffe_facts.md §2 records them) reads a real brewnet log into the same rows and CSV bytes as
brewnet's parser, and brewnet keeps the rows Caffe's script loses."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import re
from pathlib import Path

import pytest

from brewnet.errors import DataError
from brewnet.tools.logparse import (
    csv_text,
    load_training_log,
    parse_lines,
    parse_log,
    read_json_log,
    write_csv_files,
)
from tests.tools.tiny import train_tiny

# The log-line patterns of Caffe's tools/extra/parse_log.py (caffe_facts.md §2).
REGEX_ITERATION = re.compile(r"Iteration (\d+)")
REGEX_TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def _caffe_timestamp(line: str, year: int) -> dt.datetime:
    """extract_seconds.py: month = token0[1:3], day = token0[3:], token1 = hh:mm:ss.micro."""
    tokens = line.strip().split()
    clock, _, micros = tokens[1].rpartition(".")
    hour, minute, second = (int(x) for x in clock.split(":"))
    return dt.datetime(year, int(tokens[0][1:3]), int(tokens[0][3:]), hour, minute, second,
                       int(micros))


def caffe_parse(path: Path) -> tuple[list[dict], list[dict]]:
    """The reference: Caffe's script's procedure. Start time from the first line containing
    'Solving' (parsing resumes after it), year from the file's ctime (+1 when the month goes
    back), lines whose timestamp fails are skipped, a row closes on a new iteration or once it
    has as many columns as the first row, and the first row takes the second's rate."""
    year = dt.datetime.fromtimestamp(os.path.getctime(path)).year
    tables: dict[str, list[dict]] = {"train": [], "test": []}
    pending: dict[str, dict | None] = {"train": None, "test": None}
    with open(path) as f:
        lines = iter(f)
        start = next(_caffe_timestamp(line, year) for line in lines if "Solving" in line)
        iteration, rate, last = -1.0, math.nan, start
        for line in lines:
            m = REGEX_ITERATION.search(line)
            if m:
                iteration = float(m.group(1))
            if iteration == -1:
                continue
            try:
                when = _caffe_timestamp(line, year)
            except (ValueError, IndexError):
                continue
            if when.month < last.month:
                year += 1
                when = _caffe_timestamp(line, year)
            last = when
            m = REGEX_LEARNING_RATE.search(line)
            if m:
                rate = float(m.group(1))
            for kind, regex in (("train", REGEX_TRAIN_OUTPUT), ("test", REGEX_TEST_OUTPUT)):
                row, table = pending[kind], tables[kind]
                m = regex.search(line)
                if m:
                    if row is None or row["NumIters"] != iteration:
                        if row is not None:
                            table.append(row)
                        row = {"NumIters": iteration,
                               "Seconds": (when - start).total_seconds(),
                               "LearningRate": rate}
                    row[m.group(2)] = float(m.group(3))
                if row is not None and table and len(row) == len(table[0]):
                    table.append(row)
                    row = None
                pending[kind] = row
    for table in tables.values():
        if len(table) > 1:
            table[0]["LearningRate"] = table[1]["LearningRate"]
    return tables["train"], tables["test"]


def caffe_csv(rows: list[dict]) -> str:
    """write_csv: csv.DictWriter, Excel dialect, the first row's keys as the header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), dialect=csv.excel)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny"))


def test_caffe_parse_log_reads_brewnet_log_into_the_same_rows(tiny_log):
    """Caffe's parse_log.py regexes and row rules, run over a real brewnet training log, give
    exactly brewnet's rows (and so the same CSV bytes): displays at 0,2,..,10 and tests at
    0,4,8,12, with Caffe's lagging LearningRate column."""
    caffe_train, caffe_test = caffe_parse(tiny_log)
    ours = parse_log(tiny_log)
    assert [list(r.items()) for r in ours.train] == [list(r.items()) for r in caffe_train]
    assert [list(r.items()) for r in ours.test] == [list(r.items()) for r in caffe_test]
    assert [r["NumIters"] for r in ours.train] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert [r["NumIters"] for r in ours.test] == [0.0, 4.0, 8.0, 12.0]
    assert list(ours.train[0]) == ["NumIters", "Seconds", "LearningRate", "loss"]
    assert list(ours.test[0]) == ["NumIters", "Seconds", "LearningRate", "accuracy", "loss"]
    # A train row carries the rate printed before it (the previous display's).
    assert [r["LearningRate"] for r in ours.train] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    assert ours.rates == [(0, 0.1), (2, 0.1), (4, 0.05), (6, 0.05), (8, 0.025), (10, 0.025)]
    assert all(r["Seconds"] >= 0 for r in ours.train + ours.test)
    assert csv_text(ours.train) == caffe_csv(caffe_train)
    assert csv_text(ours.test) == caffe_csv(caffe_test)


def test_csv_files_are_named_after_the_log_and_written_only_with_rows(tiny_log, tmp_path):
    """`<log name>.train` and `.test` in OUT_DIR, CRLF lines and floats as Python prints them
    (Caffe's csv.excel writer); a table without rows writes no file, as Caffe."""
    parsed = parse_log(tiny_log)
    written = write_csv_files(tiny_log, tmp_path, parsed)
    assert written == [tmp_path / "train.log.train", tmp_path / "train.log.test"]
    text = (tmp_path / "train.log.train").read_bytes().decode()
    assert text.startswith("NumIters,Seconds,LearningRate,loss\r\n0.0,")
    parsed.test = []
    assert write_csv_files(tiny_log, tmp_path, parsed) == [tmp_path / "train.log.train"]
    with pytest.raises(DataError, match="no such folder"):
        write_csv_files(tiny_log, tmp_path / "missing", parsed)


def _glog(month_day: str, clock: str, message: str) -> str:
    return f"I{month_day} {clock} 4242 solver.py:1] {message}\n"


def test_lone_rows_are_kept_cut_rows_dropped_and_repeated_test_nets_split():
    """Where Caffe's script loses rows, brewnet keeps them: a single display still gives its
    row; a report cut off mid-way is dropped; two test nets with the same output names give a
    row each; NaN values are read."""
    lines = [
        _glog("1231", "23:59:59.500000", "Solving tiny"),
        _glog("1231", "23:59:59.600000", "Iteration 0, Testing net (#0)"),
        _glog("1231", "23:59:59.600000", "    Test net output #0: accuracy = 0.5"),
        _glog("1231", "23:59:59.600000", "    Test net output #1: loss = 0.7"),
        _glog("1231", "23:59:59.700000", "Iteration 0, Testing net (#1)"),
        _glog("1231", "23:59:59.700000", "    Test net output #0: accuracy = 0.25"),
        _glog("1231", "23:59:59.700000", "    Test net output #1: loss = nan"),
        _glog("0101", "00:00:00.500000", "Iteration 0 (0 iter/s, 0s/2 iters), loss = 0.9"),
        _glog("0101", "00:00:00.500000", "    Train net output #0: loss = 0.9"),
        _glog("0101", "00:00:00.500000", "Iteration 0, lr = 0.1"),
        _glog("0101", "00:00:01.000000", "Iteration 2, Testing net (#0)"),
        _glog("0101", "00:00:01.000000", "    Test net output #0: accuracy = 0.75"),
    ]
    parsed = parse_lines(lines, 2025)
    (train,) = parsed.train  # Caffe's script writes no row for a lone display
    assert train["NumIters"] == 0.0 and train["loss"] == 0.9
    assert train["Seconds"] == 1.0  # 23:59:59.5 on Dec 31 to 00:00:00.5: the year rolled over
    assert math.isnan(train["LearningRate"])  # the lr line comes after the outputs
    assert [(r["NumIters"], r["accuracy"]) for r in parsed.test] == [(0.0, 0.5), (0.0, 0.25)]
    assert math.isnan(parsed.test[1]["loss"])
    assert parsed.rates == [(0, 0.1)]


def test_json_log_reads_as_the_same_tables(tmp_path):
    """A --log-json file gives the tables a text log gives: same iterations, outputs and
    exact rates (float32 shortest form)."""
    log = train_tiny(tmp_path, "--log-json", str(tmp_path / "train.jsonl"))
    text, js = parse_log(log), load_training_log(tmp_path / "train.jsonl")
    assert [r["NumIters"] for r in js.train] == [r["NumIters"] for r in text.train]
    assert [r["NumIters"] for r in js.test] == [r["NumIters"] for r in text.test]
    assert [r["loss"] for r in js.train] == pytest.approx([r["loss"] for r in text.train],
                                                          rel=1e-5)
    assert js.rates == text.rates
    assert load_training_log(log).train == text.train


def test_bad_logs_are_one_line_errors(tmp_path):
    """A missing log, a JSON file that is not a training record or one whose values are not
    numbers is a one-line error naming the file (and line)."""
    with pytest.raises(DataError, match="no such log file"):
        load_training_log(tmp_path / "nope.log")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "train", "iteration": 0}\n{"oops": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not a training record"):
        read_json_log(bad)
    for record in ('{"kind": "train", "iteration": "x"}',
                   '{"kind": "train", "iteration": 1, "outputs": {"loss": "abc"}}',
                   '{"kind": "train", "iteration": 1, "outputs": 3}'):
        bad.write_text(record + "\n")
        with pytest.raises(DataError, match=r"bad.jsonl:1: .* not a number"):
            read_json_log(bad)
