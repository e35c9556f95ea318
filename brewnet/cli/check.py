"""``brewnet check NET_OR_SOLVER``: compile without running and list every problem.

Prints each error and warning on stderr as one located line, then, on stdout, the blob shape
table, the parameter count and the memory (with the largest blobs) of each net; the exit
status is 0 when no error was found (warnings allowed) and 1 otherwise. A solver file is
checked itself, then each of its nets.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import BrewnetError
from ..log import get_logger
from ..proto import caffe_pb2
from ..proto.positions import Node, read_positions
from ..proto.textio import read_net_located
from .netargs import PHASES, add_memory_flag, split_list


def _is_solver(root: Node | None) -> bool:
    """Whether the file's top-level fields (``root``, its field tree) are SolverParameter's
    rather than NetParameter's (decided before parsing, so a typo is reported against the
    schema that was meant)."""
    if root is None:
        return False
    solver = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    net = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
    names = [c.name for c in root.children]
    return sum(n in solver for n in names) > sum(n in net for n in names)


def _net_phases(root: Node, phase: str | None) -> list[int]:
    """The phase asked for; else TRAIN and TEST when the net (field tree ``root``) has phase
    rules (a train_test file), TEST alone when it has none (a deploy net)."""
    if phase is not None:
        return [PHASES[phase]]
    layers = root.all("layer") + root.all("layers")
    ruled = any(rule.find("phase") for lp in layers
                for rule in lp.all("include") + lp.all("exclude"))
    return [caffe_pb2.TRAIN, caffe_pb2.TEST] if ruled else [caffe_pb2.TEST]


def run(args: argparse.Namespace) -> int:
    from ..net.checks import check_net, parameter_count, shape_table
    from ..net.state import net_state
    from ..solver.checks import Findings, check_solver
    stages = split_list(args.stage)
    logger = get_logger()
    quiet, logger.level = logger.level, logging.ERROR  # the findings are printed below
    try:
        if _is_solver(read_positions(args.path)):
            findings, checks = check_solver(args.path, args.level, stages)
        else:  # the net file is read once for every phase checked
            param, layout = read_net_located(args.path)
            findings = Findings()
            checks = [check_net(param, state=net_state(param, p, args.level or 0, stages),
                                source=args.path, layout=layout, weights=args.weights or ())
                      for p in _net_phases(layout, args.phase)]
    except BrewnetError as e:  # the solver file itself does not parse
        findings, checks = Findings(errors=[e]), []
    finally:
        logger.setLevel(quiet)
    # A layer shared by the train and test nets would otherwise be reported once per net.
    errors = list(dict.fromkeys(map(str, findings.errors + [e for c in checks
                                                              for e in c.errors])))
    warnings = list(dict.fromkeys(map(str, findings.warnings + [w for c in checks
                                                                  for w in c.warnings])))
    for e in errors:
        print(f"brewnet: error: {e}", file=sys.stderr)
    for w in warnings:
        print(f"brewnet: warning: {w}", file=sys.stderr)
    for c in checks:
        if c.net is None:
            continue
        print(f"{c.title}: {len(c.net.layers)} layers")
        for row in shape_table(c.net):
            print("  " + row)
        print(f"  parameters: {parameter_count(c.net):,}")
        print(f"  memory: {c.memory.summary()}")
        if c.memory.largest:
            print(f"  largest: {c.memory.largest_text()}")
    print(f"{len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="compile a net or solver without running it; list "
                           "every problem, the blob shapes and the parameter count")
    check.add_argument("path", metavar="NET_OR_SOLVER", help="net or solver prototxt")
    check.add_argument("--phase", choices=sorted(PHASES), help="the net's phase (default: "
                       "TRAIN and TEST for a net with phase rules, else TEST); solvers check "
                       "each of their nets in its own phase")
    check.add_argument("--level", type=int, help="NetState level (a solver's train net)")
    check.add_argument("--stage", help="comma-separated NetState stages (a solver's train net)")
    check.add_argument("--weights", action="append", help="a .caffemodel to load into a net "
                       "file's net, checking its shapes (a solver uses its own `weights`)")
    add_memory_flag(check)
    check.set_defaults(func=run)
