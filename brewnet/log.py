"""Logging in glog's format, so tools written for Caffe's logs (parse_log.py, parse_log.sh)
read brewnet's: ``I1124 08:00:00.123456 12345 solver.py:204] message``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

LOGGER_NAME = "brewnet"


class GlogFormatter(logging.Formatter):
    """``Lmmdd hh:mm:ss.uuuuuu pid file:line] msg`` with L one of I, W, E, F."""

    _levels = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W",
               logging.ERROR: "E", logging.CRITICAL: "F"}

    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        micros = int((record.created % 1) * 1e6)
        prefix = (f"{self._levels.get(record.levelno, 'I')}{t.tm_mon:02d}{t.tm_mday:02d} "
                  f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d} "
                  f"{os.getpid()} {record.filename}:{record.lineno}] ")
        return prefix + record.getMessage()


def get_logger() -> logging.Logger:
    """brewnet's logger; writes to stderr in glog format unless the user configured it."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(GlogFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def set_level(level: int) -> None:
    """Minimum level logged, with glog's numbering: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL."""
    get_logger().setLevel({0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR}.get(
        int(level), logging.CRITICAL))


log = get_logger()
