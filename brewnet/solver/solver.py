"""The training loop shared by every solver type (Caffe's ``Solver``): build the train and test
nets, step (test, forward/backward, display, update, snapshot), solve to ``max_iter``,
snapshot and restore. It composes one update rule (solver/rules), which names its history
slots and supplies the formula; update.py prepares the gradients for it (Caffe's
``SGDSolver::ApplyUpdate``) and applies its step. Test passes (testing.py), snapshots
(snapshotting.py), the divergence guard (divergence.py) and what the ranks of data-parallel
training agree on (agreement.py) are mixed in from their modules.

Resuming reproduces an uninterrupted run exactly: ``restore`` also moves every data layer to
the batch the earlier run would read next (Caffe restarts them from the first record), and
random crops and mirrors continue exactly, since each batch's draws are seeded by its number.
One limitation: a SolverState has no field for the global random generator, so layers that
draw from it while training (Dropout masks) continue from a fresh stream.

Data-parallel training (brewnet.parallel): ``comm`` is the communicator of the ranks training
this model together, a single-process one (every collective the identity) unless a
GradientSync joined the solver to others. With several ranks, the displayed loss is the mean
over the ranks, a stop (a signal, a test pass interrupted) is agreed by all ranks at the same
iteration, only rank 0 builds test nets and writes snapshots, and a restore reads the
snapshot on rank 0 and broadcasts it.

Divergence: a non-finite loss, or a parameter made non-finite by an update, stops training with
a DivergenceError naming the iteration and the first layer whose output went non-finite; no
snapshot of the diverged weights is written. ``divergence = "continue"`` trains on as Caffe
does, after one warning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from ..backend import solver_count, solver_rank, to_numpy
from ..errors import SolverError, pycaffe_kind
from ..log import log
from ..net import Net
from ..parallel.comm import SINGLE, Communicator
from ..proto import caffe_pb2
from ..proto.positions import Node
from ..proto.textio import read_solver_located, to_text
from ..rng import set_random_seed
from . import debug_info as debug
from . import divergence as guard
from . import snapshot as snap
from .actions import SolverAction
from .agreement import RankAgreement
from .checks import solver_findings
from .divergence import DivergenceGuard
from .netdefs import NetDef, NetFiles, test_net_defs, train_net_def
from .report import num, output_lines, output_values
from .rules import RULES
from .snapshotting import Snapshots
from .testing import PeriodicTests
from .update import UpdateStep


class Solver(UpdateStep, PeriodicTests, Snapshots, DivergenceGuard, RankAgreement):
    """``Solver(param_or_path)``: a SolverParameter, or the path of a solver prototxt.

    ``source``: the file a SolverParameter was read from (relative net paths resolve from its
    folder and messages name it), for callers that parsed it already; ``layout``: that file's
    field tree (``read_solver_located``), so errors are located without reading it again.
    ``weights``: replaces the solver's ``weights`` list (Caffe's ``-weights``/``-snapshot``
    flags), before the nets are built so they start from those weights.
    ``allow_python_layers``: let the nets build
    ``type: "Python"`` layers (which import and run the module the prototxt names).

    Attributes as pycaffe: ``net``, ``test_nets``, ``iter``, ``param``, ``history`` (the
    rule's arrays in SolverState order); ``current_step`` is the schedule state a .solverstate
    keeps. ``rule``: the update rule; ``state``: its history by slot name, ``state[slot][i]``
    for learnable parameter i (the arrays of ``history``); ``scratch``: one buffer per
    parameter for the regularizer and the rule (Caffe's ``temp_``). ``divergence``:
    ``"stop"`` (default) or ``"continue"``, what a non-finite loss or parameter does.
    ``comm``: the ranks training together (brewnet.parallel); one process by default.
    """

    # The rule's type name, for pycaffe's per-rule classes; None: the one ``type`` names.
    rule_type: ClassVar[str | None] = None

    def __init__(self, param: caffe_pb2.SolverParameter | str | os.PathLike, *,
                 source: str | os.PathLike | None = None,
                 weights: Sequence[str] | None = None, allow_python_layers: bool = False,
                 layout: Node | None = None):
        self.allow_python_layers = allow_python_layers  # passed to every net it builds
        if isinstance(param, caffe_pb2.SolverParameter):
            copy = caffe_pb2.SolverParameter()
            copy.CopyFrom(param)
            param = copy
        else:
            source = param
            param, layout = read_solver_located(source)
        self._layout = layout
        if source is not None:
            self.source = os.fspath(source)
            solver_dir = os.path.dirname(os.path.abspath(self.source))
            snap.upgrade_snapshot_prefix(param, self.source)
        else:
            self.source, solver_dir = "<SolverParameter>", None
        if weights is not None:
            del param.weights[:]
            param.weights.extend(weights)
        log.info("Initializing solver from parameters: \n" + to_text(param))
        self.param = param
        self.comm: Communicator = SINGLE
        self.iter = 0
        self.current_step = 0
        self.history: list[Any] = []
        self.requested_early_exit = False
        self._callbacks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._reporters: list[Callable[[dict[str, Any]], None]] = []
        self.last_rate: float | None = None  # the learning rate of the latest update
        self._action: Callable[[], Any] | None = None
        self._losses: list[np.float32] = []
        self._smoothed_loss = np.float32(0)
        self._divergence = "stop"
        self._divergence_warned = False
        self._last_snapshot: str | None = None
        files = NetFiles()  # each net prototxt is read once for the train and test nets
        train_def = train_net_def(param, solver_dir, self.source, files)  # first: a net?
        self._check_param()
        self.rule = RULES[self.rule_type or param.type]()
        if solver_rank() == 0:  # only the root writes snapshots (Caffe's root_solver check)
            snap.check_snapshot_prefix(param)
        if param.random_seed >= 0:
            set_random_seed(param.random_seed)
        self.net = self._build_net(train_def, len(self.rule.slots) + 1)  # + the scratch
        self.test_nets: list[Net] = []
        try:
            # Only the root solver tests (Caffe's InitTestNets runs on root_solver only).
            defs = test_net_defs(param, solver_dir, self.source, files) \
                if solver_rank() == 0 else []
            for i, d in enumerate(defs):
                log.info(f"Creating test net (#{i}) specified by {d.described}")
                self.test_nets.append(self._build_net(d))
        except BaseException:
            self.close()  # stop the prefetch threads of the nets already built
            raise
        if param.random_seed >= 0 and solver_count() > 1:
            # The nets are built alike on every rank; what draws while training (Dropout
            # masks) must differ per rank: a stream of (random_seed, rank).
            set_random_seed(param.random_seed, solver_rank())
        log.info("Solver scaffolding done.")
        self._pre_solve()

    # ------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------
    def _check_param(self) -> None:
        """Refuse settings Caffe would abort on (or would fail on later), naming the field and
        its line; log the suspicious ones."""
        findings = solver_findings(self.param, None if self.source == "<SolverParameter>"
                                   else self.source, self.rule_type, self._layout)
        for warning in findings.warnings:
            log.warning(str(warning))
        if findings.errors:
            raise findings.errors[0]

    def _build_net(self, d: NetDef, history_slots: int = 0) -> Net:
        """A net from its definition, with the solver's ``weights`` copied in (finetuning);
        its memory check counts ``history_slots`` arrays per learnable parameter."""
        net = Net(d.param, state=d.state, source=d.source, layout=d.layout,
                  allow_python_layers=self.allow_python_layers, history_slots=history_slots)
        try:
            for models in self.param.weights:
                for path in (m.strip() for m in models.split(",")):
                    log.info(f"Finetuning from {path}")
                    net.copy_from(path)
        except BaseException:
            net.close()
            raise
        return net

    def _pre_solve(self) -> None:
        """Allocate the update rule's history, one zero array per slot and learnable
        parameter, all of the first slot first (Caffe's SolverState order), and the scratch."""
        params = self.net.learnable_params
        n = len(params)
        self.history = [p.xp.zeros_like(p.data) for _ in self.rule.slots for p in params]
        self.state = {slot: self.history[k * n:(k + 1) * n]
                      for k, slot in enumerate(self.rule.slots)}
        self.scratch = [p.xp.empty_like(p.data) for p in params]
        self.rule.setup(params)

    # ------------------------------------------------------------------------------------
    # pycaffe API
    # ------------------------------------------------------------------------------------
    def add_callback(self, on_start: Any,
                     on_gradients_ready: Callable[[], None] | None = None) -> None:
        """Call ``on_start()`` before each iteration's forward/backward and
        ``on_gradients_ready()`` before its update (pycaffe's hooks). Both forms of pycaffe:
        ``add_callback(on_start, on_gradients_ready)`` with two functions, or
        ``add_callback(obj)`` with an object that has both methods (as Caffe's Callback)."""
        if on_gradients_ready is None:
            hooks = on_start
            on_start = getattr(hooks, "on_start", None)
            on_gradients_ready = getattr(hooks, "on_gradients_ready", None)
            if not (callable(on_start) and callable(on_gradients_ready)):
                raise SolverError(f"add_callback: {type(hooks).__name__} has no on_start() and "
                                  "on_gradients_ready() methods; pass an object with both, or "
                                  "two functions")
        self._callbacks.append((on_start, on_gradients_ready))

    def add_reporter(self, report: Callable[[dict[str, Any]], None]) -> None:
        """Call ``report(record)`` with the numbers of each display, after its update
        (``{"kind": "train", "iteration", "loss", "outputs", "lr", "iter_per_s"}``), and of
        each test (``{"kind": "test", "iteration", "net", "outputs"}`` plus ``"loss"`` with
        ``test_compute_loss``), as plain Python values: the CLI's progress line and JSON log."""
        self._reporters.append(report)

    def _report(self, record: dict[str, Any]) -> None:
        for report in self._reporters:
            report(record)

    def set_action_function(self, fn: Callable[[], Any] | None) -> None:
        """``fn()`` → SolverAction (or its value ``"stop"``/``"snapshot"``/``"none"``), asked
        after each update and between test batches (Caffe's SetActionFunction)."""
        self._action = fn

    @property
    def divergence(self) -> str:
        """``"stop"``: a non-finite loss or parameter raises DivergenceError; ``"continue"``:
        warn once and train on (Caffe's behaviour)."""
        return self._divergence

    @divergence.setter
    def divergence(self, mode: str) -> None:
        self._divergence = guard.check_mode(mode)

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use the train net's parameter values."""
        net.share_with(self.net)

    # ------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------
    def _requested_action(self) -> SolverAction:
        return SolverAction(self._action()) if self._action is not None else SolverAction.NONE

    def _update_smoothed_loss(self, loss: np.float32, start_iter: int) -> None:
        """Running mean of the last ``average_loss`` losses (float32, as Caffe)."""
        window = self.param.average_loss
        if len(self._losses) < window:
            self._losses.append(loss)
            size = len(self._losses)
            self._smoothed_loss = (self._smoothed_loss * np.float32(size - 1) + loss) \
                / np.float32(size)
        else:
            idx = (self.iter - start_iter) % window
            self._smoothed_loss += (loss - self._losses[idx]) / np.float32(window)
            self._losses[idx] = loss

    @staticmethod
    def _outputs(net: Net) -> list[tuple[str, np.ndarray, float]]:
        """(name, values, loss weight) of each output blob, in the net's output order."""
        weights = net.blob_loss_weights
        return [(name, to_numpy(net.blobs[name].data), weights.get(name, 0.0))
                for name in net.outputs]

    def step(self, iters: int) -> None:
        """Run ``iters`` iterations, with the tests, display and snapshots that fall in them."""
        if not isinstance(iters, int | np.integer):  # pycaffe's step(int) raises TypeError
            raise pycaffe_kind(SolverError, TypeError)(
                f"step({iters!r}): the number of iterations is a {type(iters).__name__}; "
                "give an int, e.g. step(2)")
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + int(iters)
        self._losses, self._smoothed_loss = [], np.float32(0)
        timer, iterations_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self._agreed_stop():
                    break
            for on_start, _ in self._callbacks:
                on_start()
            display = bool(p.display) and self.iter % p.display == 0
            debugging = (display and p.debug_info and self.comm.rank == 0
                         and debug.supported(self.net))
            loss = np.float32(0)
            for _ in range(p.iter_size):
                pass_loss = np.float32(debug.forward_backward(self.net) if debugging
                                       else self.net.forward_backward())
                if self.comm.size == 1:
                    self._check_loss(pass_loss)
                loss += pass_loss
            loss /= np.float32(p.iter_size)
            if self.comm.size > 1:  # checked on the mean: a NaN on any rank stops them all
                loss = self._check_rank_loss(self._rank_mean(loss), loss, self.comm.size)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = np.float32(time.perf_counter() - timer)
                per_s = np.float32(self.iter - iterations_last) / (lapse if lapse else 1)
                log.info(f"Iteration {self.iter} ({num(per_s)} iter/s, {num(lapse)}s/"
                         f"{p.display} iters), loss = {num(self._smoothed_loss)}")
                timer, iterations_last = time.perf_counter(), self.iter
                outputs = self._rank_means(self._outputs(self.net))
                for line in output_lines("Train", outputs):
                    log.info(line)
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            if display and self._reporters:
                self._report({"kind": "train", "iteration": self.iter - 1,
                              "loss": float(self._smoothed_loss),
                              "outputs": output_values(outputs), "lr": self.last_rate,
                              "iter_per_s": float(per_s)})
            if debugging:
                debug.log_update(self.net)
            self._check_params()
            request = self._agreed_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request is SolverAction.SNAPSHOT:
                self.snapshot()
            if request is SolverAction.STOP:
                self.requested_early_exit = True
                break

    def solve(self, resume_file: str | os.PathLike | None = None) -> None:
        """Train to ``max_iter`` (resuming from a .solverstate if given), snapshot at the end
        (``snapshot_after_train``), then one last display and test pass as Caffe."""
        p = self.param
        log.info(f"Solving {self.net.name}")
        log.info(f"Learning Rate Policy: {p.lr_policy}")
        self.requested_early_exit = False
        if resume_file is not None:
            log.info(f"Restoring previous solver status from {os.fspath(resume_file)}")
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            log.info("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            # Only a forward pass: the weights have had their max_iter updates.
            loss = self._rank_mean(np.float32(self.net.forward_loss()))
            self._update_smoothed_loss(loss, start_iter)
            log.info(f"Iteration {self.iter}, loss = {num(self._smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def close(self) -> None:
        """Stop the nets' background threads (data prefetch). Never raises: it runs in
        ``finally`` blocks, where an error would hide the one being handled."""
        for net in [getattr(self, "net", None), *getattr(self, "test_nets", ())]:
            if net is None:
                continue
            try:
                net.close()
            except Exception as e:  # reported, never raised from cleanup
                log.warning(f"closing net {getattr(net, 'name', '?')} failed: {e}")
