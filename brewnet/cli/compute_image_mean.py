"""``brewnet compute_image_mean DB [OUT.binaryproto] [--backend lmdb|leveldb]``: Caffe's
tool."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..data.image_mean import channel_means, compute_image_mean, mean_blobproto
    from ..log import log
    from ..proto.binaryio import write_binary
    mean = compute_image_mean(args.db, args.backend)
    if args.out:
        log.info(f"Write to {args.out}")
        write_binary(args.out, mean_blobproto(mean))
    log.info(f"Number of channels: {mean.shape[1]}")
    for c, value in enumerate(channel_means(mean)):
        log.info(f"mean_value channel [{c}]: {value:g}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compute_image_mean", help="the mean image of a database of Datums "
                       "(Caffe's tool)", description="Compute the mean image of a database "
                       "(1×C×H×W, encoded records decoded) and print each channel's mean.")
    p.add_argument("db", metavar="DB", help="LMDB or LevelDB folder")
    p.add_argument("out", metavar="OUT.binaryproto", nargs="?",
                   help="where to write the mean (a BlobProto); omitted: print only")
    p.add_argument("--backend", default="lmdb", choices=["lmdb", "leveldb"],
                   help="database type (default lmdb)")
    p.set_defaults(func=run)
