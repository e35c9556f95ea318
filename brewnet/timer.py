"""pycaffe's ``caffe.Timer``: a stopwatch with Caffe's ``Timer`` semantics, for timing passes
from Python (``t.start(); net.forward(); t.stop(); t.ms``)."""

from __future__ import annotations

import time

from .backend import synchronizer
from .log import log


class Timer:
    """``start()``/``stop()`` and ``ms``, the milliseconds between the last start and stop.

    As Caffe's: starting a running timer and stopping a stopped one do nothing; reading ``ms``
    stops a running timer first; a timer never started reads 0 with a warning. In GPU mode the
    device is synchronized at start and stop, so queued kernels count (Caffe uses CUDA events).
    """

    def __init__(self) -> None:
        self._running = False
        self._has_run = False
        self._start = 0.0
        self._stop = 0.0

    @staticmethod
    def _now() -> float:
        synchronizer()()
        return time.perf_counter()

    def start(self) -> None:
        if not self._running:
            self._start = self._now()
            self._running = True
            self._has_run = True

    def stop(self) -> None:
        if self._running:
            self._stop = self._now()
            self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def ms(self) -> float:
        """Elapsed milliseconds of the last start → stop (stopping the timer if running)."""
        if not self._has_run:
            log.warning("Timer has never been run before reading time.")
            return 0.0
        self.stop()
        return (self._stop - self._start) * 1e3

    @property
    def seconds(self) -> float:
        return self.ms / 1e3
