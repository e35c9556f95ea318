"""``brewnet device_query``: the backends brewnet can run on — NumPy with its BLAS and threads,
and CuPy's CUDA devices (Caffe's device_query, which lists only GPUs)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..tools.device_query import report_lines
    from .devices import parse_gpus
    devices = None
    if args.gpu is not None and args.gpu.strip() != "all":
        devices = parse_gpus(args.gpu, lambda: 0)  # "all" is handled above: never called
    for line in report_lines(devices):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device_query", aliases=["device-query"],
                       help="show the backends: NumPy and its BLAS, CuPy and its GPUs")
    p.add_argument("--gpu", help="GPU ids to describe, comma-separated (default: all)")
    p.set_defaults(func=run)
