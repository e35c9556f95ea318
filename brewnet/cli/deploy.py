"""``brewnet deploy TRAIN_VAL.prototxt [-o OUT] [--batch N] [--shape TOP=C,H,W] [--level L]
[--stage S,...]``: the deploy net Caffe users write by hand, derived from the train_val net
(``brewnet/net/deploy.py``), with the preprocessing its inputs need printed and written as a
comment at its top."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import BrewnetError
from .netargs import split_list


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=3,227,227`` → ``("data", (3, 227, 227))``: one record's dims, no batch axis."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not TOP=DIM,DIM,... with positive dims "
                                         "(one record's shape, e.g. data=3,227,227)")
    return name, shape


def add_shape_argument(p: argparse.ArgumentParser) -> None:
    """``--shape``, for the commands that derive a deploy net from a train_val (deploy, export)."""
    p.add_argument("--shape", type=parse_shape, action="append", default=[],
                   metavar="TOP=C,H,W", help="one record's shape for a data top whose source "
                   "cannot be read here (no batch axis; repeat for several tops)")


def run(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write  # keeps `brewnet --help` light
    from ..net.deploy import derive_deploy
    if args.out is not None and os.path.exists(args.out) and os.path.samefile(args.out,
                                                                               args.train_val):
        raise BrewnetError(f"-o {args.out} is the train_val net itself; name another file "
                           "(e.g. deploy.prototxt)")
    deployment = derive_deploy(args.train_val, batch=args.batch, shapes=dict(args.shape),
                               level=args.level, stages=split_list(args.stage))
    text = deployment.to_text(args.train_val)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    atomic_write(args.out, text.encode("utf-8"))
    print(f"Wrote {args.out}: {len(deployment.net.layer)} layers.")
    if deployment.preprocessing:
        print("Its inputs arrive preprocessed, as the TEST-phase data layers delivered them:")
    for line in deployment.preprocessing:
        print(f"  {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    deploy = sub.add_parser("deploy", help="derive the deploy net of a train_val net")
    deploy.add_argument("train_val", help="the train_val (or train_test) net prototxt")
    deploy.add_argument("-o", "--out", help="the deploy prototxt to write (default: standard "
                        "output)")
    deploy.add_argument("--batch", type=int, help="batch size of the inputs (default: the "
                        "TEST data layer's batch_size)")
    add_shape_argument(deploy)
    deploy.add_argument("--level", type=int, default=0, help="the TEST net's state level "
                        "(NetState rules)")
    deploy.add_argument("--stage", help="comma-separated stages of the TEST net's state")
    deploy.set_defaults(func=run)
