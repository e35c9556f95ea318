"""Logging in glog's format, so tools written for Caffe's logs (parse_log.py, parse_log.sh)
read brewnet's: ``I1124 08:00:00.123456 12345 solver.py:204] message``. Where the lines go
follows glog's environment variables (GLOG_minloglevel, GLOG_log_dir, GLOG_stderrthreshold,
GLOG_logtostderr), and in a notebook kernel pycaffe's split between terminal and cell.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import IO, Any

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


SEVERITIES = ("INFO", "WARNING", "ERROR", "FATAL")
_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def _level(severity: int) -> int:
    """The logging level of glog's severity number; above FATAL, a level nothing reaches."""
    return _LEVELS[max(severity, 0)] if severity < 4 else logging.CRITICAL + 1


def _severity(levelno: int) -> int:
    """glog's severity number of a record's level (DEBUG counts as INFO)."""
    return max(0, sum(levelno >= level for level in _LEVELS) - 1)


@dataclass(frozen=True)
class GlogFlags:
    """glog's logging flags, as its ``GLOG_*`` environment variables set them. glog reads
    them when the library loads (scripts set ``os.environ['GLOG_minloglevel'] = '2'`` before
    ``import caffe``); brewnet when it is imported, and again in ``init_log``."""

    minloglevel: int = 0  # lines below this severity are dropped everywhere
    logtostderr: bool = False  # every line to stderr, no files
    alsologtostderr: bool = False  # every line to stderr as well as to the files
    stderrthreshold: int = 2  # while logging to files, lines at or above it go to stderr too
    log_dir: str = ""  # where the files go; brewnet writes none when it is empty

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> tuple[GlogFlags, list[str]]:
        """The flags ``environ`` sets, and a line for each value glog's rules do not read."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = f"GLOG_{field.name}"
            text = environ.get(name)
            if text is None:
                continue
            if field.type == "bool":  # glog's EnvToBool: true when it starts with t, y or 1
                values[field.name] = text[:1].lower() in ("t", "y", "1", "")
                if text[:1].lower() not in ("t", "y", "1", "", "f", "n", "0"):
                    problems.append(f"{name} is {text!r}; set it to 1 or 0 (read as 0)")
            elif field.type == "int":
                try:
                    values[field.name] = int(text)
                except ValueError:
                    problems.append(f"{name} is {text!r}; glog's severities are 0 (INFO), "
                                    f"1 (WARNING), 2 (ERROR), 3 (FATAL) (read as "
                                    f"{field.default})")
            else:
                values[field.name] = text
        return cls(**values), problems


def in_notebook_kernel() -> bool:
    """True inside a Jupyter (ZMQ) kernel. It looks only at modules already imported, so it
    never imports IPython where the program did not."""
    if "ipykernel" not in sys.modules:
        return False
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython else None
    return any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


class NotebookConsole(logging.StreamHandler):
    """The console in a notebook kernel, where glog's lines land with pycaffe: INFO lines to
    the process's stderr descriptor (the notebook server's terminal; the kernel redirects
    ``sys.stderr`` into the cell), warnings and errors to ``sys.stderr``, so into the cell.
    ipykernel 6 and later also pipe descriptor 2 into the cell and keep the terminal's as
    ``_original_stdstream_copy`` on their stream; INFO lines go there then."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            super().emit(record)
            return
        terminal = getattr(self.stream, "_original_stdstream_copy", None)
        try:
            os.write(2 if terminal is None else terminal,
                     (self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:  # logging's rule: a failed write never raises
            self.handleError(record)


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def glog_file_name(log_dir: str, severity: str = "INFO", stamp: str | None = None) -> str:
    """glog's file name:
    ``<dir>/<program>.<host>.<user>.log.<SEVERITY>.<yyyymmdd-hhmmss>.<pid>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "invalid-user"
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(log_dir, f"{_program()}.{socket.gethostname()}.{user}.log."
                                 f"{severity}.{stamp}.{os.getpid()}")


class GlogFiles(logging.Handler):
    """glog's log files in ``log_dir``: one per severity, each holding the lines of its
    severity and above (the INFO file holds every line), created on first use with glog's
    header, and a symlink ``<program>.<SEVERITY>`` to the newest."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.paths = [glog_file_name(log_dir, severity, stamp) for severity in SEVERITIES]
        self._files: dict[int, IO[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            for severity in range(_severity(record.levelno) + 1):
                file = self._files.get(severity) or self._open(severity)
                file.write(line)
                file.flush()
        except Exception:  # logging's rule: a failed write never raises
            self.handleError(record)

    def _open(self, severity: int) -> IO[str]:
        path = self.paths[severity]
        file = open(path, "a", encoding="utf-8")  # kept open until close()
        file.write(f"Log file created at: {time.strftime('%Y/%m/%d %H:%M:%S')}\n"
                   f"Running on machine: {socket.gethostname()}\n"
                   "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")
        link = os.path.join(self.log_dir, f"{_program()}.{SEVERITIES[severity]}")
        with contextlib.suppress(OSError):  # glog too goes on without its symlink
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(os.path.basename(path), link)
        self._files[severity] = file
        return file

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        super().close()


_also_to_stderr = False  # set by also_log_to_stderr (the command line, as Caffe's tool)


def _route(logger: logging.Logger, log_dir: str | None, stderr_level: int) -> str | None:
    """Replace brewnet's own handlers by a console for the lines at ``stderr_level`` and
    above and, with ``log_dir``, glog's files there. Returns the INFO file's path, or None;
    a folder that cannot take the files is said in a warning, and everything goes to
    stderr."""
    for handler in [h for h in logger.handlers if h.get_name() == LOGGER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    usable = log_dir is not None and os.path.isdir(log_dir) and os.access(log_dir, os.W_OK)
    console = NotebookConsole(sys.stderr) if in_notebook_kernel() else \
        logging.StreamHandler(sys.stderr)
    console.setLevel(stderr_level if usable else logging.NOTSET)
    handlers: list[logging.Handler] = [console]
    if usable:
        handlers.append(GlogFiles(log_dir))
    for handler in handlers:
        handler.setFormatter(GlogFormatter())
        handler.set_name(LOGGER_NAME)  # brewnet's own, which init_log may replace
        logger.addHandler(handler)
    if log_dir is not None and not usable:
        logger.warning(f"log folder '{log_dir}' does not exist or is not writable, so the log "
                       "goes to stderr only; create it or point GLOG_log_dir elsewhere")
    return handlers[1].paths[0] if usable else None


def _stderr_level(flags: GlogFlags) -> int:
    """What the console shows while logging to files: every line with alsologtostderr,
    else the lines at or above stderrthreshold."""
    also = flags.alsologtostderr or _also_to_stderr
    return logging.NOTSET if also else _level(flags.stderrthreshold)


def get_logger() -> logging.Logger:
    """brewnet's logger, set up on first use from glog's environment variables: every line
    to stderr, or with ``GLOG_log_dir`` (and not ``GLOG_logtostderr``) to glog's files
    there and the lines at ``GLOG_stderrthreshold`` and above to stderr; lines below
    ``GLOG_minloglevel`` nowhere. Left alone once the user configured it."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        logger.propagate = False
        flags, problems = GlogFlags.from_env(os.environ)
        logger.setLevel(_level(flags.minloglevel))
        to_files = flags.log_dir and not flags.logtostderr
        _route(logger, flags.log_dir if to_files else None, _stderr_level(flags))
        for problem in problems:
            logger.warning(problem)
    return logger


def set_level(level: int) -> None:
    """Minimum level logged, with glog's numbering: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL (4
    and above: nothing)."""
    get_logger().setLevel(_level(int(level)))


log = get_logger()


def also_log_to_stderr() -> None:
    """glog's alsologtostderr, which Caffe's command-line tool sets: every line on stderr
    even while the log also goes to files."""
    global _also_to_stderr
    _also_to_stderr = True
    for handler in get_logger().handlers:
        if handler.get_name() == LOGGER_NAME and not isinstance(handler, GlogFiles):
            handler.setLevel(logging.NOTSET)


def init_log(level: int | None = None, stderr: bool | None = None) -> str | None:
    """pycaffe's ``init_log()``, ``init_log(level)`` and ``init_log(level, stderr)``.

    ``level`` is glog's minimum level (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL). ``stderr``
    True logs to stderr; False logs as glog does without ``logtostderr``: every line to
    glog's files in ``$GLOG_log_dir`` (else the temporary folder) and the lines at
    ``$GLOG_stderrthreshold`` (default ERROR) and above also to stderr. Returns the INFO
    file's path in that case, else None.
    """
    logger = get_logger()
    if level is not None:
        set_level(level)
    if stderr is None:
        return None
    if stderr:
        return _route(logger, None, logging.NOTSET)
    flags, _ = GlogFlags.from_env(os.environ)
    return _route(logger, flags.log_dir or tempfile.gettempdir(), _stderr_level(flags))


class _CallableModule(types.ModuleType):
    """pycaffe has a function ``caffe.log(s)`` where brewnet has this module: calling the
    module writes ``s`` as one INFO line, and ``brewnet.log.get_logger`` still works."""

    def __call__(self, message: str) -> None:
        get_logger().info(str(message), stacklevel=2)


sys.modules[__name__].__class__ = _CallableModule
