"""``--log-json``: one JSON record per display and per test, flushed as written, with
numbers in float32's shortest form and NaN as null."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from brewnet.errors import BrewnetError
from brewnet.tools.jsonlog import JsonLog
from tests.tools.tiny import train_tiny


def test_records_per_display_and_test(tmp_path):
    """A tiny run (display 2, test_interval 4, max_iter 12, step lr halving every 4) gives a
    train record per display with iteration, loss, outputs, lr, seconds and images/s, and a
    test record per test with the test net's index and its outputs."""
    train_tiny(tmp_path, "--log-json", str(tmp_path / "log.jsonl"))
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    test = [r for r in records if r["kind"] == "test"]
    assert [r["iteration"] for r in train] == [0, 2, 4, 6, 8, 10]
    assert [r["lr"] for r in train] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert set(train[1]) == {"kind", "iteration", "loss", "outputs", "lr", "iter_per_s",
                             "seconds", "images_per_s"}
    assert train[1]["outputs"] == {"loss": train[1]["loss"]}  # average_loss 1: the same value
    assert train[1]["images_per_s"] == round(train[1]["iter_per_s"] * 8, 1)
    assert [(r["iteration"], r["net"]) for r in test] == [(0, 0), (4, 0), (8, 0), (12, 0)]
    assert set(test[0]["outputs"]) == {"accuracy", "loss"}
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds)


def test_each_line_is_flushed_and_non_finite_numbers_are_null(tmp_path):
    """A reader sees each record as soon as it is written; NaN becomes null, float32 values
    print short (0.1, not 0.10000000149011612)."""
    path = tmp_path / "log.jsonl"
    log = JsonLog(path)
    reporters = []
    log.attach(SimpleNamespace(add_reporter=reporters.append), images_per_iter=4)
    assert reporters == [log]
    try:
        log({"kind": "train", "iteration": 5, "loss": float("nan"), "outputs": {"loss": None},
             "lr": 0.10000000149011612, "iter_per_s": 2.5})
        record = json.loads(path.read_text())
    finally:
        log.close()
    assert record["loss"] is None and record["lr"] == 0.1
    assert record["images_per_s"] == 10.0


def test_an_unwritable_path_is_one_line(tmp_path):
    """A JSON log in a missing folder fails before training, naming the path."""
    with pytest.raises(BrewnetError, match=r"cannot write the JSON log .*missing/log.jsonl"):
        JsonLog(tmp_path / "missing" / "log.jsonl")
