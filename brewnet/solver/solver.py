"""The training loop shared by every solver type (Caffe's ``Solver``): build the train and test
nets, step (test, forward/backward, display, update, snapshot), solve to ``max_iter``,
snapshot and restore. Update rules subclass it and supply ``apply_update`` and their history.

Resuming reproduces an uninterrupted run exactly: ``restore`` also moves every data layer to
the batch the earlier run would read next (Caffe restarts them from the first record), and
random crops and mirrors continue exactly, since each batch's draws are seeded by its number.
One limitation: a SolverState has no field for the global random generator, so layers that
draw from it while training (Dropout masks) continue from a fresh stream.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from ..backend import to_numpy
from ..errors import SolverError
from ..log import log
from ..net import Net
from ..proto import caffe_pb2
from ..proto.textio import read_solver, to_text
from ..rng import set_random_seed
from . import snapshot as snap
from .lr_policy import check_lr_policy
from .netdefs import NetDef, test_net_defs, train_net_def
from .report import num, output_lines


class SolverAction(enum.Enum):
    """What an action callback (the CLI's signal handlers) asks of the loop."""

    NONE = "none"
    STOP = "stop"
    SNAPSHOT = "snapshot"


class Solver:
    """``Solver(param_or_path)``: a SolverParameter, or the path of a solver prototxt.

    ``source``: the file a SolverParameter was read from (relative net paths resolve from its
    folder and messages name it), for callers that parsed it already. ``weights``: replaces
    the solver's ``weights`` list (Caffe's ``-weights``/``-snapshot`` flags), before the nets
    are built so they start from those weights.

    Attributes as pycaffe: ``net``, ``test_nets``, ``iter``, ``param``; ``current_step`` is the
    schedule state a .solverstate keeps.
    """

    # How many history blobs the update rule keeps per learnable parameter.
    history_slots: ClassVar[int] = 0

    def __init__(self, param: caffe_pb2.SolverParameter | str | os.PathLike, *,
                 source: str | os.PathLike | None = None,
                 weights: Sequence[str] | None = None):
        if isinstance(param, caffe_pb2.SolverParameter):
            copy = caffe_pb2.SolverParameter()
            copy.CopyFrom(param)
            param = copy
        else:
            source = param
            param = read_solver(source)
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
        self.iter = 0
        self.current_step = 0
        self.history: list[Any] = []
        self.requested_early_exit = False
        self._callbacks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._action: Callable[[], Any] | None = None
        self._losses: list[np.float32] = []
        self._smoothed_loss = np.float32(0)
        train_def = train_net_def(param, solver_dir, self.source)  # first: is there a net?
        self._check_param()
        snap.check_snapshot_prefix(param)
        if param.random_seed >= 0:
            set_random_seed(param.random_seed)
        self.net = self._build_net(train_def)
        self.test_nets: list[Net] = []
        try:
            for i, d in enumerate(test_net_defs(param, solver_dir, self.source)):
                log.info(f"Creating test net (#{i}) specified by {d.described}")
                self.test_nets.append(self._build_net(d))
        except BaseException:
            self.close()  # stop the prefetch threads of the nets already built
            raise
        log.info("Solver scaffolding done.")
        self._pre_solve()

    # ------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------
    def _check_param(self) -> None:
        """Refuse settings Caffe would abort on (or would fail on later), naming the field."""
        p = self.param
        if p.average_loss < 1:
            raise SolverError(f"{self.source}: average_loss must be >= 1, got {p.average_loss}")
        if p.iter_size < 1:
            raise SolverError(f"{self.source}: iter_size must be >= 1, got {p.iter_size}")
        if p.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            raise SolverError(f"{self.source}: snapshot_format HDF5 is not supported yet; use "
                              "BINARYPROTO (the default)")
        try:
            check_lr_policy(p)
        except SolverError as e:
            raise SolverError(f"{self.source}: {e}") from None

    def _build_net(self, d: NetDef) -> Net:
        """A net from its definition, with the solver's ``weights`` copied in (finetuning)."""
        net = Net(d.param, state=d.state, source=d.source)
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
        """Allocate the update rule's history: ``history_slots`` zero arrays per learnable
        parameter, all of slot 0 first (Caffe's SolverState order)."""
        params = self.net.learnable_params
        self.history = [p.xp.zeros_like(p.data) for _ in range(self.history_slots)
                        for p in params]

    # ------------------------------------------------------------------------------------
    # pycaffe API
    # ------------------------------------------------------------------------------------
    def add_callback(self, on_start: Callable[[], None],
                     on_gradients_ready: Callable[[], None]) -> None:
        """Call ``on_start()`` before each iteration's forward/backward and
        ``on_gradients_ready()`` before its update (pycaffe's hooks)."""
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, fn: Callable[[], Any] | None) -> None:
        """``fn()`` → SolverAction (or its value ``"stop"``/``"snapshot"``/``"none"``), asked
        after each update and between test batches (Caffe's SetActionFunction)."""
        self._action = fn

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use the train net's parameter values."""
        net.share_with(self.net)

    def apply_update(self) -> None:
        """Turn the accumulated gradients into an update, apply it and count it."""
        raise NotImplementedError(f"{type(self).__name__}.apply_update")

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
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + int(iters)
        self._losses, self._smoothed_loss = [], np.float32(0)
        timer, iterations_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self.requested_early_exit:
                    break
            for on_start, _ in self._callbacks:
                on_start()
            display = bool(p.display) and self.iter % p.display == 0
            loss = np.float32(0)
            for _ in range(p.iter_size):
                loss += np.float32(self.net.forward_backward())
            loss /= np.float32(p.iter_size)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = np.float32(time.perf_counter() - timer)
                per_s = np.float32(self.iter - iterations_last) / (lapse if lapse else 1)
                log.info(f"Iteration {self.iter} ({num(per_s)} iter/s, {num(lapse)}s/"
                         f"{p.display} iters), loss = {num(self._smoothed_loss)}")
                timer, iterations_last = time.perf_counter(), self.iter
                for line in output_lines("Train", self._outputs(self.net)):
                    log.info(line)
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            request = self._requested_action()
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
            self._update_smoothed_loss(np.float32(self.net.forward_loss()), start_iter)
            log.info(f"Iteration {self.iter}, loss = {num(self._smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    # ------------------------------------------------------------------------------------
    # testing
    # ------------------------------------------------------------------------------------
    def test_all(self) -> None:
        for k in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(k)

    def test(self, k: int) -> None:
        """Test net ``k``: share the train weights, run ``test_iter[k]`` forward passes and log
        the mean of every output element (and the mean loss if ``test_compute_loss``)."""
        p = self.param
        log.info(f"Iteration {self.iter}, Testing net (#{k})")
        net = self.test_nets[k]
        net.share_with(self.net)
        n = p.test_iter[k]
        scores: list[np.ndarray] = []
        loss = np.float32(0)
        for i in range(n):
            request = self._requested_action()
            while request is not SolverAction.NONE:
                if request is SolverAction.SNAPSHOT:
                    self.snapshot()
                elif request is SolverAction.STOP:
                    self.requested_early_exit = True
                request = self._requested_action()
            if self.requested_early_exit:
                break
            iter_loss = net.forward_loss()
            if p.test_compute_loss:
                loss += np.float32(iter_loss)
            values = [to_numpy(net.blobs[name].data).astype(np.float32).ravel()
                      for name in net.outputs]
            if i == 0:
                scores = values
            else:
                for acc, v in zip(scores, values, strict=True):
                    acc += v
        if self.requested_early_exit:
            log.info("Test interrupted.")
            return
        if p.test_compute_loss:
            log.info(f"Test loss: {num(loss / np.float32(n))}")
        weights = net.blob_loss_weights
        means = [(name, acc / np.float32(n), weights.get(name, 0.0))
                 for name, acc in zip(net.outputs, scores, strict=False)]
        for line in output_lines("Test", means):
            log.info(line)

    # ------------------------------------------------------------------------------------
    # snapshots
    # ------------------------------------------------------------------------------------
    def snapshot_filename(self, extension: str) -> str:
        return snap.snapshot_filename(self.param.snapshot_prefix, self.iter, extension)

    def snapshot(self) -> tuple[str, str]:
        """Write ``<prefix>_iter_<N>.caffemodel`` and ``.solverstate``; return both paths."""
        model = self.snapshot_filename(snap.MODEL_EXT)
        snap.write_model(self.net, model, self.param.snapshot_diff)
        state = self.snapshot_filename(snap.STATE_EXT)
        snap.write_state(state, self.iter, model, self.current_step, self.history)
        return model, state

    def restore(self, path: str | os.PathLike) -> None:
        """Resume from a .solverstate: weights, iteration, schedule step and history, and every
        data layer advanced past the batches already consumed."""
        path = os.fspath(path)
        state = snap.read_state(path)
        history = snap.history_arrays(state, path, self.history)
        if state.HasField("learned_net"):
            self.net.copy_from(snap.resolve_learned_net(state.learned_net, path))
        self.iter = state.iter
        self.current_step = state.current_step
        log.info(f"{type(self).__name__}: restoring history")
        for mine, saved in zip(self.history, history, strict=True):
            mine[...] = saved
        self._skip_consumed_batches()

    def _skip_consumed_batches(self) -> None:
        """Point every data layer at the batch an uninterrupted run would read next: absolute
        batch numbers, so restoring works whatever the layers had delivered before."""
        p = self.param
        self.net.seek_data(self.iter * p.iter_size)
        tests = snap.count_test_passes(self.iter, p.test_interval, p.test_initialization)
        for k, net in enumerate(self.test_nets):
            net.seek_data(tests * p.test_iter[k])

    def close(self) -> None:
        """Stop the nets' background threads (data prefetch). Never raises: it runs in
        ``finally`` blocks, where an error would hide the one being handled."""
        for net in [getattr(self, "net", None), *getattr(self, "test_nets", ())]:
            if net is None:
                continue
            try:
                net.close()
            except Exception as e:  # noqa: BLE001 - reported, never raised from cleanup
                log.warning(f"closing net {getattr(net, 'name', '?')} failed: {e}")
