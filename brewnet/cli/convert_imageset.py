"""``brewnet convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME``: Caffe's tool, on all
cores."""

from __future__ import annotations

import argparse

from ..errors import DataError
from ..log import log


def run(args: argparse.Namespace) -> int:
    from ..data.imageset import ImageOptions, convert_imageset
    if args.jobs < 0:
        raise DataError(f"--jobs {args.jobs}: give a positive number of worker threads "
                        "(0 or omitted: one per core)")
    if (args.resize_height > 0) != (args.resize_width > 0):
        log.warning("only one of --resize_height and --resize_width is set; images are not "
                    "resized (as in Caffe, resizing needs both)")
    options = ImageOptions(root=args.root, is_color=not args.gray,
                           resize_height=max(0, args.resize_height),
                           resize_width=max(0, args.resize_width),
                           encoded=args.encoded, encode_type=args.encode_type)
    report = convert_imageset(args.list_file, args.db_name, options=options,
                              shuffle=args.shuffle, seed=args.seed, backend=args.backend,
                              check_size=args.check_size, jobs=args.jobs, strict=args.strict)
    if report.skipped:
        log.warning(f"Skipped {len(report.skipped)} image(s) that could not be read "
                    f"(--strict makes this an error):")
        for why in report.skipped:
            log.warning(f"  {why}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert_imageset", help="convert a folder of images and a list file "
                       "to an LMDB/LevelDB of Datums (Caffe's tool)",
                       description="Convert the images a list file names (lines 'relative/path "
                       "label') to a database of Datums, as Caffe's convert_imageset. The "
                       "path is appended to ROOTFOLDER as written, so give its trailing /.")
    p.add_argument("root", metavar="ROOTFOLDER/")
    p.add_argument("list_file", metavar="LISTFILE")
    p.add_argument("db_name", metavar="DB_NAME")
    p.add_argument("--gray", action="store_true", help="decode images as grayscale")
    p.add_argument("--shuffle", action="store_true", help="shuffle the list before converting")
    p.add_argument("--seed", type=int, help="seed of --shuffle (default: drawn and logged)")
    p.add_argument("--backend", default="lmdb", choices=["lmdb", "leveldb"],
                   help="database type (default lmdb)")
    p.add_argument("--resize_width", type=int, default=0, help="width images are resized to "
                   "(with --resize_height; OpenCV's bilinear INTER_LINEAR, as Caffe)")
    p.add_argument("--resize_height", type=int, default=0, help="height images are resized to")
    p.add_argument("--check_size", action="store_true",
                   help="require every image to have the first image's size")
    p.add_argument("--encoded", action="store_true",
                   help="store the encoded image files, not decoded pixels")
    p.add_argument("--encode_type", default="", choices=["png", "jpg"],
                   help="re-encode stored images as png or jpg (implies --encoded)")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker threads (default: one per core); the output is the same "
                   "for any number")
    p.add_argument("--strict", action="store_true",
                   help="stop with an error at an unreadable or missing image instead of "
                   "skipping it")
    p.set_defaults(func=run)
