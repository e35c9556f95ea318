"""The solver's test passes (Caffe's ``Solver::Test``): share the train weights with each test
net, average its outputs over ``test_iter`` batches, log and report them. Mixed into
:class:`brewnet.solver.Solver`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..log import log
from ..net import Net
from ..net.scoring import average_outputs
from ..proto import caffe_pb2
from .actions import SolverAction
from .report import num, output_lines, output_values


class PeriodicTests:
    """Needs the Solver's ``param``, ``net``, ``test_nets``, ``iter``, ``snapshot``,
    ``_requested_action``, ``_reporters`` and ``_report``."""

    param: caffe_pb2.SolverParameter
    net: Net
    test_nets: list[Net]
    iter: int
    requested_early_exit: bool
    _reporters: list[Callable[[dict[str, Any]], None]]

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

        def interrupted() -> bool:
            """Serve the signals that arrived; True once one asked to stop."""
            request = self._requested_action()
            while request is not SolverAction.NONE:
                if request is SolverAction.SNAPSHOT:
                    self.snapshot()
                elif request is SolverAction.STOP:
                    self.requested_early_exit = True
                request = self._requested_action()
            return self.requested_early_exit

        score = average_outputs(net, n, stop=interrupted)
        if score is None:
            log.info("Test interrupted.")
            return
        if p.test_compute_loss:
            log.info(f"Test loss: {num(np.float32(score.loss))}")
        means = score.outputs
        for line in output_lines("Test", means):
            log.info(line)
        if self._reporters:
            record = {"kind": "test", "iteration": self.iter, "net": k,
                      "outputs": output_values(means)}
            if p.test_compute_loss:
                record["loss"] = score.loss
            self._report(record)
