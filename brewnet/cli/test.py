"""``brewnet test --model NET --weights W``: Caffe's test command — score trained weights over
``--iterations`` batches, logging each batch's outputs and their averages in Caffe's wording."""

from __future__ import annotations

import argparse

from ..errors import BrewnetError
from ..log import log
from .netargs import add_net_arguments, open_net


def run(args: argparse.Namespace) -> int:
    from ..tools.score import batch_lines, score_net, summary_lines
    if args.iterations < 1:
        raise BrewnetError(f"--iterations {args.iterations}: give a positive number of batches")
    net, device = open_net(args, weights=args.weights)
    if device is None:
        log.info("Use CPU.")
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
    add_net_arguments(p, default_phase="TEST")
    p.add_argument("--weights", required=True, help=".caffemodel (or .caffemodel.h5) to score")
    p.add_argument("--iterations", type=int, default=50,
                   help="batches to run (default 50, as Caffe)")
    p.set_defaults(func=run)
