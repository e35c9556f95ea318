"""The nets a solver names (solver/netdefs.py): each prototxt is opened once while a solver is
built, however many nets come from it, and errors are still located in it."""

from __future__ import annotations

import builtins
import io

import pytest

import brewnet
from brewnet.errors import BrewnetError

NET = """name: "tiny"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "out"
  inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "y" top: "loss" }
"""

SOLVER = """net: "{net}"
test_iter: 1
test_iter: 1
test_interval: 10
test_state {{ stage: "a" }}
test_state {{ stage: "b" }}
base_lr: 0.01
lr_policy: "fixed"
max_iter: 1
"""


def _count_opens(monkeypatch) -> dict[str, int]:
    """Count every open() of a .prototxt file, by path."""
    opened: dict[str, int] = {}
    real_open, real_io_open = builtins.open, io.open

    def counting(real):
        def open_(file, *args, **kwargs):
            if str(file).endswith(".prototxt"):
                opened[str(file)] = opened.get(str(file), 0) + 1
            return real(file, *args, **kwargs)
        return open_

    monkeypatch.setattr(builtins, "open", counting(real_open))
    monkeypatch.setattr(io, "open", counting(real_io_open))
    return opened


def test_building_a_solver_opens_each_prototxt_once(tmp_path, monkeypatch):
    """One train net and two test nets from one net file: the solver file and the net file
    are each opened exactly once (they were opened 2 and 4 times before the plan)."""
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(SOLVER.format(net=net))
    opened = _count_opens(monkeypatch)
    solver = brewnet.get_solver(str(solver_file))
    try:
        assert len(solver.test_nets) == 2
        assert opened == {str(solver_file): 1, str(net): 1}
    finally:
        solver.close()


def test_errors_in_a_net_read_once_are_still_located(tmp_path):
    """The net file's positions travel with its NetParameter: a bad layer setting in it is
    reported at its file:line:col (the num_output field), though the solver did not read the
    file again."""
    net = tmp_path / "net.prototxt"
    net.write_text(NET.replace("num_output: 2", "num_output: 0"))
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(SOLVER.format(net=net))
    with pytest.raises(BrewnetError) as caught:
        brewnet.get_solver(str(solver_file))
    assert (caught.value.file, caught.value.line, caught.value.col) == (str(net), 5, 25)
