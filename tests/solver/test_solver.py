"""The training loop (Caffe's Solver::Step/Solve/Test) on a fake net: order of tests, display
and snapshots; Caffe's log lines; smoothed loss; building nets from the solver's fields."""

from __future__ import annotations

import re

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.errors import SolverError
from brewnet.proto import caffe_pb2
from brewnet.solver import SGDSolver, Solver, SolverAction
from tests.solver.fakes import INIT, TARGET, FakeNet
from tests.solver.test_report import (
    REGEX_ITERATION,
    REGEX_LEARNING_RATE,
    REGEX_TEST_OUTPUT,
    REGEX_TRAIN_OUTPUT,
)

GLOG_PREFIX = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ [\w.]+:\d+\] ")


@pytest.fixture(autouse=True)
def fake_net(monkeypatch):
    monkeypatch.setattr("brewnet.solver.solver.Net", FakeNet)
    FakeNet.instances.clear()


def make_param(text: str = "", net: str = 'net_param { name: "fake" }'):
    base = f"""{net} base_lr: 0.01 lr_policy: "fixed" max_iter: 6 momentum: 0.9 """
    return text_format.Parse(base + text, caffe_pb2.SolverParameter())


def messages(glog) -> list[str]:
    return [GLOG_PREFIX.sub("", line) for line in glog.getvalue().splitlines()]


def test_solve_log_lines_parse_like_caffe(glog, tmp_path):
    """Solve's log: Solving/Learning Rate Policy, test lines at test_interval, display lines
    with train outputs and lr, snapshot lines, final loss and `Optimization Done.`; each has
    the glog prefix and parses with parse_log.py's regexes."""
    p = make_param(f'test_iter: 2 test_interval: 3 display: 3 snapshot: 4 '
                   f'snapshot_prefix: "{tmp_path}/fake" test_compute_loss: true')
    solver = SGDSolver(p)
    glog.truncate(0)
    glog.seek(0)
    solver.solve()
    raw = glog.getvalue().splitlines()
    assert all(GLOG_PREFIX.match(line) for line in raw)
    msgs = messages(glog)
    assert msgs[:2] == ["Solving fake", "Learning Rate Policy: fixed"]
    assert msgs[-1] == "Optimization Done."
    testing = [m for m in msgs if "Testing net" in m]
    assert testing == ["Iteration 0, Testing net (#0)", "Iteration 3, Testing net (#0)",
                       "Iteration 6, Testing net (#0)"]
    display = [m for m in msgs if re.match(r"Iteration \d+ \(", m)]
    assert [REGEX_ITERATION.search(m).group(1) for m in display] == ["0", "3"]
    assert re.fullmatch(r"Iteration 0 \(\S+ iter/s, \S+s/3 iters\), loss = \S+", display[0])
    train = [REGEX_TRAIN_OUTPUT.search(m) for m in msgs if "Train net output" in m]
    assert [(m.group(1), m.group(2)) for m in train] == [("0", "accuracy"), ("1", "loss")] * 2
    assert [REGEX_LEARNING_RATE.search(m).group(1) for m in msgs if ", lr = " in m] \
        == ["0.01", "0.01"]
    tests = [m for m in msgs if "Test net output" in m]
    assert all(REGEX_TEST_OUTPUT.search(m) for m in tests)
    assert tests[1].endswith(" loss)") and "(* 1 = " in tests[1]
    assert sum(m.startswith("Test loss: ") for m in msgs) == 3
    assert [m for m in msgs if m.startswith("Snapshotting")] == [
        f"Snapshotting to binary proto file {tmp_path}/fake_iter_4.caffemodel",
        f"Snapshotting solver state to binary proto file {tmp_path}/fake_iter_4.solverstate",
        f"Snapshotting to binary proto file {tmp_path}/fake_iter_6.caffemodel",
        f"Snapshotting solver state to binary proto file {tmp_path}/fake_iter_6.solverstate"]
    # After max_iter: one forward-only display line, then the final test (Caffe's Solve).
    final_test = msgs.index("Iteration 6, Testing net (#0)")
    assert re.fullmatch(r"Iteration 6, loss = \S+", msgs[final_test - 1])
    assert sum(m.startswith("Iteration 6, loss = ") for m in msgs) == 1
    # Order within one displayed iteration: progress, train outputs, then lr (ApplyUpdate).
    i = msgs.index(display[1])
    assert "Train net output #0" in msgs[i + 1] and msgs[i + 3] == "Iteration 3, lr = 0.01"


def test_test_averages_each_output_element(glog):
    """Test output = mean over test_iter forward passes of each element (accuracy cycles
    0, .25, .5, .75 on the fake), with `(* w = w·mean loss)` for loss outputs."""
    solver = SGDSolver(make_param("test_iter: 4 test_interval: 100"))
    glog.truncate(0)
    glog.seek(0)
    solver.test_all()
    msgs = messages(glog)
    assert msgs[0] == "Iteration 0, Testing net (#0)"
    assert msgs[1] == "    Test net output #0: accuracy = 0.375"
    assert re.fullmatch(r"    Test net output #1: loss = (\S+) \(\* 1 = \1 loss\)", msgs[2])
    assert solver.test_nets[0].shared_with is solver.net


def test_stop_during_a_test_pass_interrupts_it(glog):
    """A stop request that arrives during a test pass ends it before the next batch: Caffe
    logs `Test interrupted.` and no test outputs, and the solver records the early exit."""
    solver = SGDSolver(make_param("test_iter: 4 test_interval: 100"))
    answers = iter([SolverAction.NONE, SolverAction.NONE, "stop"])
    solver.set_action_function(lambda: next(answers, SolverAction.NONE))
    glog.truncate(0)
    glog.seek(0)
    solver.test_all()
    msgs = messages(glog)
    assert msgs == ["Iteration 0, Testing net (#0)", "Test interrupted."]
    assert solver.requested_early_exit
    assert solver.test_nets[0].calls == 2  # two batches ran before the request was seen


def test_test_initialization_false_skips_iteration_zero(glog):
    """test_initialization: false → no test before the first update."""
    solver = SGDSolver(make_param("test_iter: 1 test_interval: 2 test_initialization: false"))
    solver.step(5)
    assert [m for m in messages(glog) if "Testing" in m] == [
        "Iteration 2, Testing net (#0)", "Iteration 4, Testing net (#0)"]


def test_smoothed_loss_is_running_mean_over_average_loss(glog):
    """The displayed loss is the mean of the last `average_loss` iteration losses."""
    solver = SGDSolver(make_param("display: 1 average_loss: 3"))
    losses = []
    real = FakeNet.forward_backward

    def spy(net):
        losses.append(real(net))
        return losses[-1]

    FakeNet.forward_backward = spy
    try:
        solver.step(5)
    finally:
        FakeNet.forward_backward = real
    shown = [float(re.search(r"loss = (\S+)", m).group(1)) for m in messages(glog)
             if re.match(r"Iteration \d+ \(", m)]
    expected = [np.mean(losses[max(0, i - 2): i + 1]) for i in range(5)]
    np.testing.assert_allclose(shown, expected, rtol=1e-5)


def test_iter_size_averages_the_loss(glog):
    """With iter_size k the iteration loss is the mean of k forward/backward losses."""
    solver = SGDSolver(make_param("display: 1 iter_size: 2"))
    solver.step(1)
    loss = float(re.search(r"loss = (\S+)", messages(glog)[-4]).group(1))
    assert solver.net.calls == 2
    # Both passes see the initial weights (the update comes after them).
    expected = sum(0.5 * float(((a - t) ** 2).sum()) for a, t in zip(INIT, TARGET, strict=True))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_action_stop_and_snapshot(tmp_path):
    """An action function asking SNAPSHOT writes one; STOP ends step() early."""
    answers = iter([SolverAction.NONE, SolverAction.SNAPSHOT, "stop"])
    solver = SGDSolver(make_param(f'snapshot_prefix: "{tmp_path}/a"'))
    solver.set_action_function(lambda: next(answers))
    solver.solve()
    assert solver.iter == 3 and solver.requested_early_exit
    assert (tmp_path / "a_iter_2.caffemodel").exists()
    assert (tmp_path / "a_iter_3.solverstate").exists()  # snapshot_after_train on early stop


# -- which nets the solver builds ------------------------------------------------------------
def test_train_state_merging():
    """Train NetState: TRAIN, then the net's own state, then train_state (stages append)."""
    p = make_param('train_state { level: 2 stage: "b" }',
                   net='net_param { name: "fake" state { stage: "a" level: 1 } }')
    state = SGDSolver(p).net.state
    assert (state.phase, state.level, list(state.stage)) == (caffe_pb2.TRAIN, 2, ["a", "b"])


def test_generic_net_gives_one_test_net_per_test_iter():
    """`net_param` with two test_iter → two TEST nets, with their test_state."""
    p = make_param('test_iter: 1 test_iter: 2 test_interval: 10 '
                   'test_state { stage: "x" } test_state { stage: "y" level: 3 }')
    solver = SGDSolver(p)
    states = [n.state for n in solver.test_nets]
    assert [(s.phase, list(s.stage), s.level) for s in states] == [
        (caffe_pb2.TEST, ["x"], 0), (caffe_pb2.TEST, ["y"], 3)]


@pytest.mark.parametrize("text,message", [
    ("", "names no train net; set one of: net, net_param, train_net, train_net_param"),
    ('train_net: "a.prototxt"', "sets net_param and train_net; keep exactly one"),
])
def test_train_net_fields(text, message):
    """Exactly one of net/net_param/train_net/train_net_param: none or two is an error."""
    net = "" if not text else 'net_param { name: "fake" }'
    with pytest.raises(SolverError, match=re.escape(message)):
        SGDSolver(make_param(text, net=net))


@pytest.mark.parametrize("text,message", [
    ('test_net_param { name: "t" }', "1 test net(s)"),
    ('test_iter: 1', "test_interval is 0"),
    ('test_iter: 1 test_interval: 5 test_state {} test_state {}', "2 test_state(s)"),
    ('average_loss: 0', "average_loss must be >= 1"),
    ('lr_policy: "step"', "stepsize"),
])
def test_bad_solver_settings(text, message):
    """Test-net counts, test_interval, test_state count, average_loss and a missing stepsize:
    each error names the field."""
    p = make_param()
    text_format.Merge(text, p)
    with pytest.raises(SolverError, match=re.escape(message)):
        SGDSolver(p)


def test_net_file_beside_the_solver_file(tmp_path, monkeypatch, glog):
    """A relative net path missing from the working directory is read beside the solver file,
    with a log line saying so; prefix defaults to the solver path without extension."""
    (tmp_path / "net.prototxt").write_text('name: "besides"')
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 1')
    monkeypatch.chdir("/")
    solver = SGDSolver(str(solver_file))
    assert solver.net.name == "besides"
    assert any("using " + str(tmp_path / "net.prototxt") in m for m in messages(glog))
    assert solver.param.snapshot_prefix == str(tmp_path / "solver")


def test_unwritable_snapshot_prefix(tmp_path):
    """A snapshot prefix whose folder is missing fails at start-up, naming the prefix."""
    prefix = tmp_path / "missing" / "lenet"
    with pytest.raises(SolverError, match=re.escape(f"cannot write to snapshot prefix "
                                                    f"'{prefix}'")):
        SGDSolver(make_param(f'snapshot: 10 snapshot_prefix: "{prefix}"'))
    assert not list(tmp_path.iterdir())


def test_solver_composes_the_rule_its_type_names():
    """The one training loop composes an update rule: Solver(param) takes the rule `type`
    names, with its history slots by name in SolverState order; pycaffe's SGDSolver fixes
    SGD whatever `type` says."""
    solver = Solver(make_param('type: "Adam"'))
    assert type(solver.rule).__name__ == "Adam"
    assert [id(a) for a in solver.state["m"] + solver.state["v"]] == list(map(id, solver.history))
    solver.step(1)
    assert solver.iter == 1
    assert type(SGDSolver(make_param('type: "Adam"')).rule).__name__ == "SGD"


def test_weights_are_loaded_into_train_and_test_nets(tmp_path, glog):
    """`weights` (comma-separated) are copied into the train net and every test net, each
    logged as `Finetuning from <file>`."""
    donor = SGDSolver(make_param())
    donor.net.learnable_params[1].data[...] = [7.0, 8.0]
    path = tmp_path / "w.caffemodel"
    path.write_bytes(donor.net.to_proto().SerializeToString())
    solver = SGDSolver(make_param(f'weights: " {path} ,{path}" test_iter: 1 test_interval: 9'))
    for net in (solver.net, solver.test_nets[0]):
        np.testing.assert_array_equal(net.learnable_params[1].data, [7.0, 8.0])
    assert messages(glog).count(f"Finetuning from {path}") == 4


def test_weights_override_replaces_the_solver_weights(tmp_path, glog):
    """weights= (the CLI's -weights/-snapshot) replaces the param's `weights` before the nets
    are built: [] loads nothing, [path] loads only that file."""
    donor = SGDSolver(make_param())
    donor.net.learnable_params[1].data[...] = [5.0, 6.0]
    path = tmp_path / "w.caffemodel"
    path.write_bytes(donor.net.to_proto().SerializeToString())
    param = make_param(f'weights: "{tmp_path}/missing.caffemodel"')
    cleared = SGDSolver(param, weights=[])
    assert not len(cleared.param.weights) and len(param.weights) == 1  # the caller's is kept
    replaced = SGDSolver(param, weights=[str(path)])
    np.testing.assert_array_equal(replaced.net.learnable_params[1].data, [5.0, 6.0])
    assert not any("missing" in m for m in messages(glog))


def test_solver_param_with_source_resolves_like_the_file(tmp_path, monkeypatch):
    """A SolverParameter given with source= resolves relative net paths beside that file and
    takes its default snapshot prefix from it, as if the file had been read."""
    (tmp_path / "net.prototxt").write_text('name: "beside"')
    param = text_format.Parse('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed"',
                              caffe_pb2.SolverParameter())
    monkeypatch.chdir("/")
    solver = SGDSolver(param, source=tmp_path / "solver.prototxt")
    assert solver.net.name == "beside" and solver.source == str(tmp_path / "solver.prototxt")
    assert solver.param.snapshot_prefix == str(tmp_path / "solver")


def test_get_solver_reads_the_file_once(tmp_path, glog):
    """The solver file is parsed (and its solver_type upgraded, with its log line) once."""
    from brewnet.solver import get_solver

    f = tmp_path / "s.prototxt"
    f.write_text('net_param { name: "fake" } base_lr: 0.1 lr_policy: "fixed" solver_type: SGD')
    get_solver(str(f))
    assert sum(m.startswith("Upgraded solver_type") for m in messages(glog)) == 1


def test_close_never_raises(glog):
    """Solver.close() runs in finally blocks: a net whose close fails is logged as a warning
    and the other nets are still closed, so the original exception is not hidden."""
    solver = SGDSolver(make_param("test_iter: 1 test_interval: 9"))
    closed = []

    def failing_close():
        raise RuntimeError("thread stuck")

    solver.net.close = failing_close
    solver.test_nets[0].close = lambda: closed.append(True)
    solver.close()
    assert closed == [True]
    assert any("closing net fake failed: thread stuck" in m for m in messages(glog))


def test_get_solver_builds_the_named_type(tmp_path):
    """get_solver reads `type` (default SGD); an unknown type is an error at the `type`
    field's line, with a suggestion (every Caffe type is built: tests/solver/test_rules.py)."""
    from brewnet.solver import get_solver

    f = tmp_path / "s.prototxt"
    f.write_text('net_param { name: "fake" } base_lr: 0.1 lr_policy: "fixed"')
    assert type(get_solver(str(f))) is SGDSolver
    f.write_text('net_param { name: "fake" } type: "Adamm" base_lr: 0.1 lr_policy: "fixed"')
    with pytest.raises(SolverError, match=re.escape(f"{f}:1:28: unknown solver type 'Adamm'; "
                                                    "did you mean 'Adam'?")):
        get_solver(str(f))
