"""``brewnet extract_features WEIGHTS MODEL BLOB[,BLOB...] DB[,DB...] NUM_BATCHES [DB_TYPE]
[CPU|GPU] [DEVICE_ID]``: Caffe's tool, with its positional arguments."""

from __future__ import annotations

import argparse

from ..errors import BrewnetError
from .netargs import split_list


def run(args: argparse.Namespace) -> int:
    from ..net import Net
    from ..proto import caffe_pb2
    from ..tools.features import extract_features
    from .devices import choose_device
    if args.num_batches < 1:
        raise BrewnetError(f"NUM_BATCHES {args.num_batches}: give a positive number of batches")
    mode = args.mode.upper()
    if mode not in ("CPU", "GPU"):
        raise BrewnetError(f"'{args.mode}' is not a device; give CPU or GPU (then a DEVICE_ID)")
    if args.db_type == "lmdb":
        from ..data.lmdb_source import write_lmdb as write
    elif args.db_type == "leveldb":
        from ..data.leveldb_source import write_leveldb as write
    else:
        raise BrewnetError(f"DB_TYPE '{args.db_type}' is not a database type; give lmdb or "
                           "leveldb")
    choose_device(str(args.device_id) if mode == "GPU" else None,
                  caffe_pb2.SolverParameter())
    net = Net(args.model, phase=caffe_pb2.TEST, weights=args.weights)
    try:
        extract_features(net, split_list(args.blobs), split_list(args.dbs), args.num_batches,
                         write)
    finally:
        net.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract_features", help="write a trained net's blobs to databases of "
                       "Datums (Caffe's tool)", description="Run NUM_BATCHES forward passes "
                       "of MODEL (TEST phase) with WEIGHTS and write each image's values of "
                       "each BLOB to its DB as a float_data Datum keyed %%010d.")
    p.add_argument("weights", metavar="WEIGHTS", help="trained .caffemodel")
    p.add_argument("model", metavar="MODEL", help="net prototxt (its data layer feeds images)")
    p.add_argument("blobs", metavar="BLOB[,BLOB...]", help="blobs to extract")
    p.add_argument("dbs", metavar="DB[,DB...]", help="one new database per blob")
    p.add_argument("num_batches", metavar="NUM_BATCHES", type=int, help="forward passes")
    p.add_argument("db_type", metavar="DB_TYPE", nargs="?", default="lmdb",
                   help="lmdb (default) or leveldb")
    p.add_argument("mode", metavar="CPU|GPU", nargs="?", default="CPU", help="device (default "
                   "CPU)")
    p.add_argument("device_id", metavar="DEVICE_ID", nargs="?", type=int, default=0,
                   help="GPU number (default 0)")
    p.set_defaults(func=run)
