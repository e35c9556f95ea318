"""``brewnet parse_log LOG OUT_DIR``: Caffe's tools/extra/parse_log.py — the train and test
tables of a training log as ``OUT_DIR/<LOG name>.train`` and ``.test`` CSV files, the same
columns and bytes Caffe's script writes."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from ..tools.logparse import parse_log, write_csv_files
    parsed = parse_log(args.log)
    written = write_csv_files(args.log, args.out_dir, parsed, args.delimiter)
    for path in written:
        print(path)
    if not parsed.train and not parsed.test:
        print(f"brewnet: {args.log} has no train or test output lines; nothing written "
              "(was the log written with display: 0, or is it not a training log?)",
              file=sys.stderr)
    elif args.verbose:
        for kind, rows in (("train", parsed.train), ("test", parsed.test)):
            if not rows:
                print(f"brewnet: no {kind} rows in {args.log}; no .{kind} file", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse_log", aliases=["parse-log"],
                       help="a training log's train and test tables as CSV (Caffe's "
                       "parse_log.py)")
    p.add_argument("log", help="the training log (the stderr of brewnet solve or caffe train)")
    p.add_argument("out_dir", help="folder for <log name>.train and <log name>.test")
    p.add_argument("--delimiter", default=",", help="column delimiter (default ',')")
    p.add_argument("--verbose", action="store_true", help="say which tables had no rows")
    p.set_defaults(func=run)
