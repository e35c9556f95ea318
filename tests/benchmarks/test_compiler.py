"""benchmarks.compiler: the generated residual stacks have the asked-for depth and compile."""

import re

from benchmarks import compiler
from brewnet.net import TEST, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text


def test_residual_stack_has_exactly_the_asked_layers():
    """residual_stack(n) holds n prototxt layers (blocks plus filler ReLUs) and compiles,
    with one Split per block input used twice."""
    for n in (2, 11, 25):
        param = parse_text(compiler.residual_stack(n), caffe_pb2.NetParameter())
        assert len(param.layer) == n
        net = Net(param, TEST)
        assert len(net.layers) == n + (n - 2) // 9


def test_quick_run_reports_per_layer_cost(capsys):
    """Each size has a row with parse, compile, total, per-layer and peak figures."""
    assert compiler.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^ +\d+ +\d+( +[0-9.]+){5}$", out, re.M)) == 2
    assert "growth 20 -> 40 layers" in out
