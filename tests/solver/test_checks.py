"""Solver settings checked before training: warnings for what is legal but suspicious, each
at the line of its field; the update rule's settings and type, which training refuses the same
way; other errors are covered case by case in tests/test_broken_inputs.py."""

from __future__ import annotations

import pytest

from brewnet.errors import SolverError
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text
from brewnet.solver import get_solver
from brewnet.solver.checks import solver_findings


def findings(tmp_path, text: str):
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    return solver_findings(parse_text(text, caffe_pb2.SolverParameter()), str(path)), path


def test_suspicious_settings_are_warnings(tmp_path):
    """base_lr 0, sigmoid without stepsize, and test_interval without test_iter are legal
    (Caffe runs them) but are warned about, at their lines; none is an error."""
    found, path = findings(tmp_path, 'net: "n.prototxt"\nbase_lr: 0\nlr_policy: "sigmoid"\n'
                                     "gamma: -0.1\ntest_interval: 10\n")
    assert found.errors == []
    assert [(w.line, w.message.split(",")[0]) for w in found.warnings] == [
        (3, "lr_policy 'sigmoid' has no `stepsize`"),
        (5, "test_interval is set but there is no test_iter"),
        (2, "base_lr is 0")]
    assert all(w.file == str(path) for w in found.warnings)


def test_lenet_solver_settings_are_clean(tmp_path):
    """LeNet's solver: inv with gamma and power, one test net, snapshots in an existing
    folder: no findings."""
    (tmp_path / "examples" / "mnist").mkdir(parents=True)
    text = ('net: "examples/mnist/lenet_train_test.prototxt"\ntest_iter: 100\n'
            'test_interval: 500\nbase_lr: 0.01\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\n'
            f'snapshot: 5000\nsnapshot_prefix: "{tmp_path}/examples/mnist/lenet"\n')
    found, _ = findings(tmp_path, text)
    assert found.errors == [] and found.warnings == []


def test_snapshot_folder_checked_even_without_periodic_snapshots(tmp_path):
    """snapshot_after_train (the default) writes a final snapshot, so a missing folder is an
    error even with `snapshot: 0`; with snapshot_after_train false it is not checked."""
    text = f'lr_policy: "fixed"\nsnapshot_prefix: "{tmp_path}/nope/x"\n'
    found, _ = findings(tmp_path, text)
    assert [e.line for e in found.errors] == [2]
    found, _ = findings(tmp_path, text + "snapshot_after_train: false\n")
    assert found.errors == []


# RMSProp with three settings training refuses (Caffe's RMSPropSolver CHECKs momentum == 0 and
# 0 <= rms_decay < 1; Regularize knows only L2 and L1), a field per line.
RMSPROP = ('net_param { name: "n" }\nbase_lr: 0.01\nlr_policy: "fixed"\ntype: "RMSProp"\n'
           'momentum: 0.9\nrms_decay: 1.5\nregularization_type: "L3"\n')


def test_update_rule_settings_are_errors_at_their_lines(tmp_path):
    """The rule's own settings are checked with the solver's: RMSProp's momentum and
    rms_decay, and the regularization_type, each an error at its field."""
    found, path = findings(tmp_path, RMSPROP)
    assert [(e.line, e.col, e.message.split(" (got")[0]) for e in found.errors] == [
        (7, 1, "unknown regularization_type 'L3'; use one of: L2, L1"),
        (5, 1, "momentum cannot be used with RMSProp"),
        (6, 1, "rms_decay must be in [0, 1), got 1.5")]
    assert all(e.file == str(path) for e in found.errors)


def test_unknown_type_is_an_error_at_its_line_with_a_suggestion(tmp_path):
    """`type: "Adamm"` names no rule: an error at the type field, suggesting Adam."""
    found, _ = findings(tmp_path, 'net_param { name: "n" }\nlr_policy: "fixed"\n'
                                  'type: "Adamm"\n')
    assert [(e.line, e.col) for e in found.errors] == [(3, 1)]
    assert found.errors[0].message.startswith("unknown solver type 'Adamm'; did you mean "
                                              "'Adam'? known types: SGD, Nesterov")


@pytest.mark.parametrize("text", [RMSPROP, RMSPROP.replace("RMSProp", "Adamm")])
def test_training_refuses_what_check_reports_first(tmp_path, text):
    """get_solver raises the first error solver_findings reports, with its location: check
    finds everything training would refuse."""
    found, path = findings(tmp_path, text)
    with pytest.raises(SolverError) as refused:
        get_solver(str(path))
    assert str(refused.value) == str(found.errors[0])
