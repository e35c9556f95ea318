"""Progress lines: C++ ostream number formatting and Caffe's parse_log.py regexes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from brewnet.solver.report import num, output_lines

# tools/extra/parse_log.py, verbatim patterns
REGEX_ITERATION = re.compile(r"Iteration (\d+)")
REGEX_TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


@pytest.mark.parametrize("value,text", [
    (0.01, "0.01"), (np.float32(0.01), "0.01"), (1e-05, "1e-05"), (2.302585093, "2.30259"),
    (100000.0, "100000"), (1e6, "1e+06"), (0.0, "0"), (1.0, "1"), (-0.5, "-0.5"),
    (float("nan"), "nan"), (float("inf"), "inf"), (7, "7"), (np.int64(12), "12"),
])
def test_num_matches_cpp_ostream(value, text):
    """Numbers print as C++ `ostream << float`: 6 significant digits, %g style."""
    assert num(value) == text


def test_output_lines_number_elements_across_blobs_and_show_loss():
    """Elements are numbered across outputs; loss outputs add `(* w = w·v loss)`."""
    lines = list(output_lines("Train", [("accuracy", np.array([0.5], np.float32), 0.0),
                                        ("loss", np.array(2.5, np.float32), 0.5),
                                        ("per_class", np.array([1, 2], np.float32), 0.0)]))
    assert lines == ["    Train net output #0: accuracy = 0.5",
                     "    Train net output #1: loss = 2.5 (* 0.5 = 1.25 loss)",
                     "    Train net output #2: per_class = 1",
                     "    Train net output #3: per_class = 2"]
    m = REGEX_TRAIN_OUTPUT.search(lines[1])
    assert m.groups() == ("1", "loss", "2.5")
    test = next(output_lines("Test", [("loss", np.array(1e-7, np.float32), 1.0)]))
    assert REGEX_TEST_OUTPUT.search(test).group(3) == "1e-07"
