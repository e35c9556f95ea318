"""``brewnet test --model NET --weights W``: Caffe's test command — score trained weights over
``--iterations`` batches, logging each batch's outputs and their averages in Caffe's wording."""

from __future__ import annotations

import argparse

from ..errors import BrewnetError
from ..log import log
from ..proto import caffe_pb2
from .devices import choose_device

_PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def run(args: argparse.Namespace) -> int:
    from ..net import Net  # noqa: PLC0415
    from ..tools.score import batch_lines, score_net, summary_lines  # noqa: PLC0415

    if args.iterations < 1:
        raise BrewnetError(f"--iterations {args.iterations}: give a positive number of batches")
    # A net has no solver_mode: the CPU unless --gpu names a device (Caffe's test).
    if choose_device(args.gpu, caffe_pb2.SolverParameter()) is None:
        log.info("Use CPU.")
    stages = [s.strip() for s in (args.stage or "").split(",") if s.strip()]
    net = Net(args.model, phase=_PHASES[args.phase], level=args.level, stages=stages,
              weights=args.weights, allow_python_layers=args.allow_python_layers)
    try:
        log.info(f"Running for {args.iterations} iterations.")

        def show(i: int, outputs: list) -> None:
            for line in batch_lines(i, outputs):
                log.info(line)

        score = score_net(net, args.iterations, on_batch=show)
        for line in summary_lines(score):
            log.info(line)
    finally:
        net.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="score trained weights: average a net's outputs over "
                       "batches (Caffe's test)")
    p.add_argument("--model", required=True, help="net prototxt")
    p.add_argument("--weights", required=True, help=".caffemodel (or .caffemodel.h5) to score")
    p.add_argument("--iterations", type=int, default=50,
                   help="batches to run (default 50, as Caffe)")
    p.add_argument("--phase", choices=sorted(_PHASES), default="TEST",
                   help="the net's phase (default TEST, as Caffe)")
    p.add_argument("--gpu", help="GPU to use (CuPy): an id, a comma-separated list or 'all' "
                   "(brewnet uses the first); omit it for the CPU")
    p.add_argument("--level", type=int, default=0, help="the net's state level (NetState "
                   "rules)")
    p.add_argument("--stage", help="comma-separated stages of the net's state")
    p.add_argument("--allow-python-layers", "--allow_python_layers",
                   dest="allow_python_layers", action="store_true",
                   help="let `type: \"Python\"` layers import and run the modules they name")
    p.set_defaults(func=run)
