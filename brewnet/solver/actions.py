"""What an action callback (the CLI's signal handlers) asks of the training loop."""

from __future__ import annotations

import enum


class SolverAction(enum.Enum):
    """Caffe's SolverAction: asked after each update and between test batches."""

    NONE = "none"
    STOP = "stop"
    SNAPSHOT = "snapshot"
