"""The ``brewnet`` command: Caffe's tool, with Caffe's flag spellings accepted.

Each subcommand lives in its own module of this package and adds itself through a
``register(subparsers)`` function, so a new command is a new file. Every failure is one line
on stderr and a non-zero exit status; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..errors import BrewnetError
from ..log import also_log_to_stderr

_CAFFE_FLAG = re.compile(r"^-([A-Za-z][A-Za-z0-9_]+)(=.*)?$")
_BOOLEAN_VALUE = re.compile(r"^(--[A-Za-z][A-Za-z0-9_]+)=(true|false)$", re.IGNORECASE)


def normalize_flags(argv: Sequence[str]) -> list[str]:
    """Caffe (gflags) spells flags ``-solver=x`` or ``-solver x``; map them to ``--solver``.
    gflags' booleans may also be given a value: ``-gray=true`` is ``--gray``, and
    ``-gray=false`` is left out (brewnet's switches are off by default)."""
    out = []
    for arg in argv:
        m = _CAFFE_FLAG.match(arg)
        arg = f"--{m.group(1)}{m.group(2) or ''}" if m else arg
        boolean = _BOOLEAN_VALUE.match(arg)
        if boolean is None:
            out.append(arg)
        elif boolean.group(2).lower() == "true":
            out.append(boolean.group(1))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command module of this package that defines ``register``."""
    parser = argparse.ArgumentParser(prog="brewnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    package = sys.modules[__package__]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = normalize_flags(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    also_log_to_stderr()  # as Caffe's tool: with GLOG_log_dir, the terminal still shows all
    args.argv = list(argv)  # what a launcher of several processes passes on to each
    try:
        with _memory_limit_ignored(getattr(args, "ignore_memory_limit", False)):
            return args.func(args)
    except BrewnetError as e:
        if args.debug:
            raise
        print(f"brewnet: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if args.debug:
            raise
        print(f"brewnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("brewnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in brewnet: still one line, unless --debug
        if args.debug:
            raise
        print(f"brewnet: internal error: {type(e).__name__}: {e} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


@contextmanager
def _memory_limit_ignored(ignored: bool) -> Iterator[None]:
    """Run a command given ``--ignore-memory-limit`` with the environment variable that
    every net it builds reads (the solver's nets too), restored afterwards."""
    if not ignored:
        yield
        return
    from ..net.memory import IGNORE_ENV
    before = os.environ.get(IGNORE_ENV)
    os.environ[IGNORE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[IGNORE_ENV]
        else:
            os.environ[IGNORE_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
