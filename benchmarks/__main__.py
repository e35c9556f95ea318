"""``python -m benchmarks [--quick]``: every benchmark in turn, each printing its block."""

from __future__ import annotations

import argparse
import sys

from . import compiler, data, inference, layers, lenet, modern

MODULES = (lenet, inference, modern, layers, compiler, data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = ap.parse_args(argv)
    for module in MODULES:
        module.main(["--quick"] if args.quick else [])
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
