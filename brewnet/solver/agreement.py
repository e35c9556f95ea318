"""What the ranks of data-parallel training must agree on inside the training loop: the loss
and outputs they display (means over the ranks), and when to stop or snapshot (a request on
any rank counts for all, at the same iteration). One small all-reduce each; in one process
(``comm.size == 1``) every method gives back its argument. Mixed into
:class:`brewnet.solver.Solver`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..parallel.comm import Communicator
from .actions import SolverAction


class RankAgreement:
    """Needs the Solver's ``comm``, ``requested_early_exit`` and ``_requested_action``."""

    comm: Communicator
    requested_early_exit: bool
    _requested_action: Callable[[], SolverAction]

    def _agreed_action(self) -> SolverAction:
        """This rank's request merged over the ranks, so that all of them snapshot, stop or
        go on at the same iteration; a stop anywhere stops every rank."""
        request = self._requested_action()
        if self.comm.size == 1:
            return request
        snapshot, stop = self.comm.sum_values(np.array(
            [request is SolverAction.SNAPSHOT, request is SolverAction.STOP], np.float32))
        return SolverAction.STOP if stop else SolverAction.SNAPSHOT if snapshot \
            else SolverAction.NONE

    def _agreed_stop(self) -> bool:
        """Whether any rank stopped early (only rank 0 tests, and a test can be stopped)."""
        if self.comm.size > 1:
            flag = np.array([self.requested_early_exit], np.float32)
            self.requested_early_exit = bool(self.comm.sum_values(flag)[0])
        return self.requested_early_exit

    def _rank_mean(self, loss: np.float32) -> np.float32:
        """The mean of a loss over the ranks (sum × 1/N in float32)."""
        if self.comm.size == 1:
            return loss
        total = self.comm.sum_values(np.array([loss], np.float32))[0]
        return np.float32(total * (np.float32(1) / np.float32(self.comm.size)))

    def _rank_means(self, outputs: list[tuple[str, np.ndarray, float]]
                    ) -> list[tuple[str, np.ndarray, float]]:
        """Each (name, values, loss weight) output with its values averaged over the ranks."""
        if self.comm.size == 1 or not outputs:
            return outputs
        flat = np.concatenate([v.astype(np.float32).reshape(-1) for _, v, _ in outputs])
        flat = self.comm.sum_values(flat) * (np.float32(1) / np.float32(self.comm.size))
        sizes = np.cumsum([v.size for _, v, _ in outputs])[:-1]
        return [(name, part.reshape(v.shape), w)
                for (name, v, w), part in zip(outputs, np.split(flat, sizes), strict=True)]
