"""Logging in glog's format, so tools written for Caffe's logs (parse_log.py, parse_log.sh)
read brewnet's: ``I1124 08:00:00.123456 12345 solver.py:204] message``.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import tempfile
import time
import types

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
        handler.set_name(LOGGER_NAME)  # brewnet's own, which init_log may replace
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def set_level(level: int) -> None:
    """Minimum level logged, with glog's numbering: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL."""
    get_logger().setLevel({0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR}.get(
        int(level), logging.CRITICAL))


log = get_logger()


def glog_file_name(log_dir: str) -> str:
    """glog's file name: ``<dir>/<program>.<host>.<user>.log.INFO.<yyyymmdd-hhmmss>.<pid>``."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "invalid-user"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(log_dir, f"{program}.{socket.gethostname()}.{user}.log.INFO."
                                 f"{stamp}.{os.getpid()}")


def init_log(level: int | None = None, stderr: bool | None = None) -> str | None:
    """pycaffe's ``init_log()``, ``init_log(level)`` and ``init_log(level, stderr)``.

    ``level`` is glog's minimum level (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL). ``stderr``
    True logs to stderr; False logs as glog does without ``logtostderr``: every line to a file
    in ``$GLOG_log_dir`` (else the temporary folder) and ERROR lines also to stderr. Returns
    the log file's path in that case, else None.
    """
    logger = get_logger()
    if level is not None:
        set_level(level)
    if stderr is None:
        return None
    for handler in [h for h in logger.handlers if h.get_name() == LOGGER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(GlogFormatter())
    console.set_name(LOGGER_NAME)
    logger.addHandler(console)
    if stderr:
        return None
    console.setLevel(logging.ERROR)
    path = glog_file_name(os.environ.get("GLOG_log_dir") or tempfile.gettempdir())
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(GlogFormatter())
    to_file.set_name(LOGGER_NAME)
    logger.addHandler(to_file)
    return path


class _CallableModule(types.ModuleType):
    """pycaffe has a function ``caffe.log(s)`` where brewnet has this module: calling the
    module writes ``s`` as one INFO line, and ``brewnet.log.get_logger`` still works."""

    def __call__(self, message: str) -> None:
        get_logger().info(str(message), stacklevel=2)


sys.modules[__name__].__class__ = _CallableModule
