"""``brewnet plot LOG OUT.png``: a training log's losses and accuracies against the iteration
(train and test; accuracy on a second axis) above its learning rate. Needs matplotlib
(``brewnet[plot]``)."""

from __future__ import annotations

import argparse

from ..errors import DataError


def run(args: argparse.Namespace) -> int:
    from ..tools.logparse import load_training_log
    from ..tools.plot import save_plot
    parsed = load_training_log(args.log)
    if not parsed.train and not parsed.test:
        raise DataError(f"{args.log}: no train or test outputs to plot; give the stderr of a "
                        "training run with display set (brewnet solve ... 2> train.log) or its "
                        "--log-json file")
    save_plot(parsed, args.out, x=args.x, title=args.title or f"training log: {args.log}")
    print(args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot a training log: losses, accuracy, learning rate")
    p.add_argument("log", help="training log: the stderr of brewnet solve (or caffe train), "
                   "or a --log-json file")
    p.add_argument("out", help="image to write: .png, .svg or .pdf")
    p.add_argument("--x", choices=("iterations", "seconds"), default="iterations",
                   help="horizontal axis (default iterations)")
    p.add_argument("--title", help="title above the plot (default: the log's path)")
    p.set_defaults(func=run)
