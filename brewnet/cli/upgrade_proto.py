"""``brewnet upgrade_net_proto_text IN OUT``, ``upgrade_net_proto_binary IN OUT`` and
``upgrade_solver_proto_text IN OUT``: Caffe's tools, writing out the upgrades brewnet applies
whenever it reads a file (V0 and V1 nets, data transformation and input fields, BatchNorm
parameters, ``solver_type``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from google.protobuf.message import Message

from ..errors import BrewnetError
from ..log import log


def _upgrade(args: argparse.Namespace, read: Callable[[str], Message],
             upgrade: Callable[[Message, list[str]], None], write: Callable[[str, Message], None],
             what: str) -> int:
    """Read ``args.input`` as is, upgrade it, write ``args.output``; Caffe's exit status (1
    when settings had to be dropped, the file still written)."""
    if args.input == args.output:
        raise BrewnetError(f"input and output are both '{args.input}'; write the upgrade to "
                           "a new file and compare before replacing the original")
    message = read(args.input)
    original = type(message)()
    original.CopyFrom(message)
    problems: list[str] = []
    upgrade(message, problems)
    if message == original:
        log.info(f"File already in latest proto format: {args.input}")
    if problems:
        log.error("Encountered error(s) while upgrading; see details above.")
    write(args.output, message)
    log.info(f"Wrote upgraded {what} to {args.output}")
    return 1 if problems else 0


def run_net_text(args: argparse.Namespace) -> int:
    from ..proto import caffe_pb2
    from ..proto.textio import read_text, write_text
    from ..proto.upgrade import upgrade_net
    return _upgrade(args, lambda p: read_text(p, caffe_pb2.NetParameter),
                    lambda m, problems: upgrade_net(m, args.input, problems), write_text,
                    "NetParameter text proto")


def run_net_binary(args: argparse.Namespace) -> int:
    from ..proto import caffe_pb2
    from ..proto.binaryio import read_binary, write_binary
    from ..proto.upgrade import upgrade_net
    return _upgrade(args, lambda p: read_binary(p, caffe_pb2.NetParameter),
                    lambda m, problems: upgrade_net(m, args.input, problems), write_binary,
                    "NetParameter binary proto")


def run_solver_text(args: argparse.Namespace) -> int:
    from ..proto import caffe_pb2
    from ..proto.textio import read_text, write_text
    from ..proto.upgrade import upgrade_solver
    return _upgrade(args, lambda p: read_text(p, caffe_pb2.SolverParameter),
                    lambda m, problems: upgrade_solver(m, args.input), write_text,
                    "SolverParameter text proto")


def register(sub: argparse._SubParsersAction) -> None:
    commands = (("upgrade_net_proto_text", run_net_text, "a net prototxt"),
                ("upgrade_net_proto_binary", run_net_binary, "a binary net (.caffemodel)"),
                ("upgrade_solver_proto_text", run_solver_text, "a solver prototxt"))
    for name, func, what in commands:
        p = sub.add_parser(name, help=f"upgrade {what} from legacy Caffe formats (Caffe's "
                           "tool)", description=f"Read {what}, bring legacy definitions up to "
                           "date as brewnet does on every read, and write the result.")
        p.add_argument("input", metavar="IN")
        p.add_argument("output", metavar="OUT")
        p.set_defaults(func=func)
