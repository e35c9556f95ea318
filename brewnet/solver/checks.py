"""A solver definition checked before any net is built or any iteration runs: every setting that
would abort training, silently train nothing, or fail at the first snapshot, each reported with
the solver file's line of the field at fault.

``solver_findings`` returns all of them (``brewnet check`` prints every one); the Solver raises
the first error. The update rule's own settings are its ``validate``'s (solver/rules), so check
and training refuse the same ones.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import BrewnetError, SolverError, WeightsError
from ..net.checks import NetCheck, check_net
from ..net.hdf5_weights import require_h5py
from ..proto import caffe_pb2
from ..proto.positions import Node, read_positions
from ..proto.textio import read_solver_located
from .gradients import REGULARIZATION_TYPES, unknown_regularization
from .lr_policy import LR_POLICIES
from .netdefs import NetDef, NetFiles, test_net_defs, train_net_def
from .rules import RULES, Report
from .snapshot import upgrade_snapshot_prefix

# What each schedule reads besides base_lr (caffe_facts: GetLearningRate), and what happens
# when the field is left unset (protobuf's 0).
_POLICY_NEEDS = {
    "step": (("gamma", "the rate drops to 0 at the first step"),),
    "multistep": (("gamma", "the rate drops to 0 at the first stepvalue"),),
    "exp": (("gamma", "base_lr·gamma^iter is 0 from the second iteration on"),),
    "inv": (("gamma", "base_lr·(1+gamma·iter)^(−power) stays base_lr"),
            ("power", "base_lr·(1+gamma·iter)^(−power) stays base_lr")),
    "poly": (("power", "base_lr·(1 − iter/max_iter)^power stays base_lr"),),
    "sigmoid": (("gamma", "base_lr/(1+exp(−gamma·(iter − stepsize))) stays base_lr/2"),),
}


class SolverWarning(SolverError):
    """A legal but suspicious solver setting; never raised, rendered like an error."""


@dataclass
class Findings:
    """Errors (training cannot go right) and warnings (it can, but probably not as meant)."""

    errors: list[SolverError] = field(default_factory=list)
    warnings: list[SolverWarning] = field(default_factory=list)
    test_counts_agree: bool = True  # test_iter against the test nets, test_interval


def _at(root: Node | None, *fields: str) -> Node | None:
    """The first of ``fields`` the solver text sets, for the location of a finding."""
    if root is None:
        return None
    for name in fields:
        node = root.find(name)
        if node is not None:
            return node
    return None


def solver_findings(param: caffe_pb2.SolverParameter, source: str | None = None,
                    rule: str | None = None, layout: Node | None = None) -> Findings:
    """Check ``param`` (read from the prototxt ``source``, when there is one, whose field
    tree is ``layout`` if the caller has it) for the update rule named ``rule``; by default
    the one its ``type`` names (pycaffe's SGDSolver and its siblings fix their own, whatever
    ``type`` says)."""
    file = source if source and os.path.isfile(source) else None
    root = layout if layout is not None or not file else read_positions(file)
    found = Findings()

    def report(message: str, *fields: str, warning: bool = False) -> None:
        cls = SolverWarning if warning else SolverError
        node = _at(root, *fields)
        finding = cls(message, file=file or source,
                      line=node.line if node else None, col=node.col if node else None)
        (found.warnings if warning else found.errors).append(finding)

    _check_update(param, rule, report)
    if param.average_loss < 1:
        report(f"average_loss must be >= 1, got {param.average_loss}", "average_loss")
    if param.iter_size < 1:
        report(f"iter_size must be >= 1, got {param.iter_size}", "iter_size")
    if param.snapshot_format == caffe_pb2.SolverParameter.HDF5:
        try:
            require_h5py()  # at start-up, not at the first snapshot
        except WeightsError as e:  # naming the package to install
            report(f"snapshot_format: HDF5: {e}", "snapshot_format")
    _check_schedule(param, report)
    found.test_counts_agree = _check_tests(param, report)
    _check_snapshot_folder(param, report)
    if param.base_lr == 0:
        report("base_lr is 0, so training will not change the net; set e.g. base_lr: 0.01",
               "base_lr", warning=True)
    return found


def _check_update(param: caffe_pb2.SolverParameter, rule: str | None, report: Report
                  ) -> None:
    """The rule (``rule``, else the one ``type`` names) exists, the regularization of the
    gradients is one Caffe knows, and the rule accepts its settings."""
    name = rule or param.type
    if name not in RULES:
        close = difflib.get_close_matches(name, RULES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        report(f"unknown solver type '{name}'; {hint}known types: " + ", ".join(RULES), "type")
    if param.regularization_type not in REGULARIZATION_TYPES:
        report(unknown_regularization(param.regularization_type), "regularization_type")
    if name in RULES:
        RULES[name]().validate(param, report)


def _check_schedule(param: caffe_pb2.SolverParameter, report) -> None:
    policy = param.lr_policy
    if not policy:
        report("lr_policy is not set (Caffe has no default); add e.g. "
               'lr_policy: "fixed" — valid: ' + ", ".join(LR_POLICIES))
        return
    if policy not in LR_POLICIES:
        close = difflib.get_close_matches(policy, LR_POLICIES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        report(f"unknown lr_policy '{policy}'; {hint}valid policies: " + ", ".join(LR_POLICIES),
               "lr_policy")
        return
    if policy == "step" and param.stepsize <= 0:
        report(f"lr_policy 'step' needs `stepsize` > 0 in the solver, got {param.stepsize}",
               "stepsize", "lr_policy")
    if policy == "sigmoid" and not param.HasField("stepsize"):
        report("lr_policy 'sigmoid' has no `stepsize`, so the rate is centred on iteration 0 "
               "and starts at base_lr/2; set stepsize to the iteration of the midpoint",
               "lr_policy", warning=True)
    if policy == "multistep" and not len(param.stepvalue):
        report("lr_policy 'multistep' needs at least one `stepvalue` in the solver",
               "lr_policy")
    for name, effect in _POLICY_NEEDS.get(policy, ()):
        if not param.HasField(name):
            report(f"lr_policy '{policy}' needs `{name}`, which is not set, so {effect}; "
                   f"add e.g. {name}: {0.1 if name == 'gamma' else 0.75}", "lr_policy")
    if policy == "multistep" and list(param.stepvalue) != sorted(set(param.stepvalue)):
        report("stepvalue must increase (" + ", ".join(map(str, param.stepvalue)) + "); "
               "Caffe steps through them in order, so a smaller one later is never reached",
               "stepvalue")


def _check_tests(param: caffe_pb2.SolverParameter, report) -> bool:
    """test_iter against the test nets it counts (Caffe's InitTestNets), and test_interval;
    whether the test nets can be built."""
    generic = param.HasField("net") or param.HasField("net_param")
    explicit = len(param.test_net_param) + len(param.test_net)
    n_iter = len(param.test_iter)
    if generic and n_iter < explicit or not generic and n_iter != explicit:
        if not generic and explicit == 0:
            report(f"test_iter is given ({n_iter} value(s)) but there is no test net; with "
                   "train_net/train_net_param, add test_net or test_net_param (or remove "
                   "test_iter)", "test_iter")
        else:
            report(f"the solver defines {explicit} test net(s) (test_net/test_net_param) but "
                   f"{n_iter} test_iter value(s); give one test_iter per test net",
                   "test_iter", "test_net", "test_net_param")
        return False
    n_tests = max(n_iter, explicit)
    if n_tests and param.test_interval <= 0:
        report(f"the solver defines {n_tests} test net(s) but test_interval is "
               f"{param.test_interval}; set test_interval > 0", "test_interval", "test_iter")
        return False
    if not n_tests and param.test_interval > 0:
        report("test_interval is set but there is no test_iter, so no test net is built and "
               "nothing is tested; add test_iter (batches per test)", "test_interval",
               warning=True)
    return True


def _check_snapshot_folder(param: caffe_pb2.SolverParameter, report) -> None:
    """The folder of snapshot_prefix must exist and be writable whenever a snapshot will be
    written (every ``snapshot`` iterations, or at the end with snapshot_after_train)."""
    if not (param.snapshot > 0 or param.snapshot_after_train) \
            or not param.HasField("snapshot_prefix"):
        return
    folder = os.path.dirname(param.snapshot_prefix) or "."
    if not os.path.isdir(folder):
        report(f"cannot write to snapshot prefix '{param.snapshot_prefix}': folder '{folder}' "
               "does not exist; create it or change snapshot_prefix", "snapshot_prefix")
    elif not os.access(folder, os.W_OK | os.X_OK):
        report(f"cannot write to snapshot prefix '{param.snapshot_prefix}': folder '{folder}' "
               "is not writable; fix its permissions or change snapshot_prefix",
               "snapshot_prefix")


def check_solver(path: str, level: int | None = None, stages: Sequence[str] = ()
                 ) -> tuple[Findings, list[NetCheck]]:
    """Check the solver prototxt at ``path``, then compile each net it describes (train net
    first, with the solver's ``weights`` copied in), collecting every problem. ``level`` and
    ``stages`` go into the train net's state, as ``brewnet solve`` puts them."""
    param, layout = read_solver_located(path)
    upgrade_snapshot_prefix(param, path)
    if level is not None:
        param.train_state.level = level
    param.train_state.stage.extend(stages)
    found = solver_findings(param, path, layout=layout)
    solver_dir = os.path.dirname(os.path.abspath(path))
    weights = [w.strip() for models in param.weights for w in models.split(",") if w.strip()]
    # The train net's memory counts the rule's history and its scratch, one array each.
    rule = RULES.get(param.type)
    slots = len(rule.slots) + 1 if rule is not None else 0
    defs: list[tuple[NetDef, str, int]] = []
    files = NetFiles()
    try:
        train = train_net_def(param, solver_dir, path, files)
        defs.append((train, f"{train.source} (train net)", slots))
    except BrewnetError as e:
        found.errors.append(e.locate(file=path))
    if found.test_counts_agree:
        try:
            defs += [(d, f"{d.source} (test net #{i})", 0)
                     for i, d in enumerate(test_net_defs(param, solver_dir, path, files))]
        except BrewnetError as e:
            found.errors.append(e.locate(file=path))
    checks = [check_net(d.param, state=d.state, source=d.source, layout=d.layout,
                        weights=weights, title=title, history_slots=history)
              for d, title, history in defs]
    return found, checks
