"""A tiny trainable net and solver (DummyData: nothing to read from disk) and a training log
captured from the real CLI, shared by the tools and CLI tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from brewnet.cli import main as cli
from brewnet.log import GlogFormatter, get_logger

TINY_NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
"""

# lr halves every 4 iterations; displays at 0, 2, ..., 10; tests at 0, 4, 8 and 12 (the end).
TINY_SOLVER = """
net: "{net}"
test_iter: 2  test_interval: 4
base_lr: 0.1  momentum: 0.9  lr_policy: "step"  gamma: 0.5  stepsize: 4
display: 2  max_iter: 12  snapshot_prefix: "{prefix}"  random_seed: 1
"""


def write_tiny(folder: Path) -> Path:
    """Write tiny.prototxt and solver.prototxt (absolute paths inside) and return the solver."""
    (folder / "tiny.prototxt").write_text(TINY_NET)
    solver = folder / "solver.prototxt"
    solver.write_text(TINY_SOLVER.format(net=folder / "tiny.prototxt", prefix=folder / "tiny"))
    return solver


@contextmanager
def captured_log(path: Path) -> Iterator[Path]:
    """Copy every brewnet log line, glog-formatted, into ``path`` while the block runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(GlogFormatter())
    logger = get_logger()
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


def train_tiny(folder: Path, *extra: str) -> Path:
    """Train the tiny net with ``brewnet solve`` (in this process) and return its log file;
    the final weights are ``folder/tiny_iter_12.caffemodel``."""
    solver = write_tiny(folder)
    with captured_log(folder / "train.log") as log_path:
        assert cli.main(["solve", "--solver", str(solver), *extra]) == 0
    return log_path
