"""``brewnet solve --solver S`` (alias ``train``): Caffe's train command.

Several ranks (brewnet.parallel): under ``mpiexec -n N`` each process is one rank (MPI on
CPUs; NCCL with ``--gpu``, each rank on the GPU of its local rank); ``--gpu 0,1`` or ``--gpu
all`` outside mpiexec starts one process per GPU. Rank 0 logs, tests, writes snapshots and the
JSON log; a rank that fails names itself and ends the whole job."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import backend
from ..errors import BrewnetError, DivergenceError
from ..log import log
from ..parallel import world
from ..parallel.comm import Communicator
from ..proto import caffe_pb2
from ..proto.positions import Node
from .devices import choose_device, gpu_count, parse_gpus
from .netargs import add_memory_flag, split_list

if TYPE_CHECKING:
    from ..solver import Solver


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


def _batch_size(solver: Solver) -> int | None:
    """Images per forward pass: the first axis of the first layer's first top, if it has one."""
    tops = solver.net.top_vecs[0] if solver.net.top_vecs else []
    shape = tuple(tops[0].data.shape) if tops else ()
    return int(shape[0]) if shape else None


def _one_line(e: BaseException) -> str:
    return str(e) if isinstance(e, (BrewnetError, OSError)) else f"{type(e).__name__}: {e}"


def run(args: argparse.Namespace) -> int:
    from ..parallel import launch as launcher
    from ..parallel import nccl
    from ..proto.textio import read_solver_located
    if args.snapshot and args.weights:
        raise BrewnetError("give either --snapshot (resume training) or --weights (fine-tune), "
                           "not both")
    here = world.launched()
    gpus = parse_gpus(args.gpu, gpu_count) if args.gpu is not None else []
    if len(gpus) > 1 and here.size == 1:  # Caffe's -gpu 0,1: one process per GPU
        nccl.require_nccl()
        return launcher.launch_per_gpu(gpus, args.argv, nccl.new_uid())
    param, layout = read_solver_located(args.solver)
    # Caffe's train: the command line's level and stages go into the train net's state.
    if args.level is not None:
        param.train_state.level = args.level
    param.train_state.stage.extend(split_list(args.stage))
    if here.size == 1:
        return _train(args, param, layout, world.SINGLE)
    comm, _ = world.join(here, gpus)
    backend.set_solver_count(comm.size)
    backend.set_solver_rank(comm.rank)
    backend.set_multiprocess(True)
    world.log_as_rank(comm)
    if param.random_seed < 0:  # what must be alike on every rank (rand_skip) needs one seed
        fresh = np.random.default_rng().integers(2**31, size=1)
        param.random_seed = int(comm.bcast_values(fresh)[0])
        log.info(f"random_seed is not set: every rank uses rank 0's {param.random_seed}")
    try:
        return _train(args, param, layout, comm)
    except DivergenceError:
        if comm.rank == 0:  # every rank saw the same mean loss or weights: rank 0 says it
            raise
        return 1
    except BaseException as e:  # one failing rank ends the job, named
        print(f"brewnet: error: rank {comm.rank} of {comm.size}: {_one_line(e)}",
              file=sys.stderr, flush=True)
        comm.abort(1)


def _train(args: argparse.Namespace, param: caffe_pb2.SolverParameter, layout: Node | None,
           comm: Communicator) -> int:
    """Build the solver (joined to the other ranks of ``comm``), restore, solve, report."""
    from ..parallel.sync import GradientSync
    from ..solver import get_solver
    from ..tools.jsonlog import JsonLog
    from ..tools.progress import progress_line
    if comm.size == 1:
        choose_device(args.gpu, param)
    root = comm.rank == 0
    # Caffe's train: -snapshot drops the solver's weights (the state has its own); -weights
    # replaces them. The solver loads them into every net as it builds it; with several ranks
    # only rank 0 reads them (the files need not exist elsewhere) and broadcasts its weights.
    weights = [] if args.snapshot or not root else [args.weights] if args.weights else None
    json_log = JsonLog(args.log_json) if args.log_json and root else None  # bad path: first
    solver = progress = restore_signals = sync = None
    try:
        solver = get_solver(param, source=args.solver, weights=weights, layout=layout,
                            allow_python_layers=args.allow_python_layers)
        solver.divergence = args.on_divergence
        restore_signals = install_signal_effects(solver, args.sigint_effect, args.sighup_effect)
        if comm.size > 1:  # as pycaffe's train.py wires Caffe's NCCL object
            sync = GradientSync(solver, comm)
            sync.bcast()
            solver.add_callback(sync)
            if solver.param.layer_wise_reduce:
                solver.net.after_backward(sync)
        batch = _batch_size(solver)
        images_per_iter = batch * max(solver.param.iter_size, 1) * comm.size if batch else None
        if comm.size > 1:
            log.info(f"Training on {comm.size} ranks ({comm.engine}): each iteration takes "
                     f"{comm.size} x {batch} images per pass")
        log.info("Starting Optimization")
        if args.snapshot:
            log.info(f"Resuming from {args.snapshot}")
            log.info(f"Restoring previous solver status from {args.snapshot}")
            solver.restore(args.snapshot)
        progress = progress_line(solver, sys.stderr, images_per_iter) if root else None
        if json_log is not None:
            json_log.attach(solver, images_per_iter)
        first_iter = solver.iter
        start = time.perf_counter()
        solver.solve()
        seconds = time.perf_counter() - start
        iterations = solver.iter - first_iter
        if images_per_iter and iterations > 0:
            images = iterations * images_per_iter
            log.info(f"Training took {seconds:.1f} s for {iterations} iterations: "
                     f"{images / max(seconds, 1e-9):.0f} training images/s (including tests)")
        else:
            log.info(f"Training took {seconds:.1f} s for {iterations} iterations")
    except DivergenceError:
        if sync is not None:  # every rank stopped at the same point: finish the reductions
            sync.drain()
        raise
    finally:
        if progress is not None:
            progress.close()
        if restore_signals is not None:
            restore_signals()
        if solver is not None:
            solver.close()
        if json_log is not None:
            json_log.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    solve = sub.add_parser("solve", aliases=["train"], help="train a net with a solver prototxt")
    solve.add_argument("--solver", required=True, help="solver prototxt")
    solve.add_argument("--weights", help="comma-separated .caffemodel files to fine-tune from")
    solve.add_argument("--snapshot", help=".solverstate to resume from")
    solve.add_argument("--gpu", help="GPU(s) to use (CuPy): an id, or a comma-separated list "
                       "or 'all' to train on several, one process per GPU joined by NCCL; "
                       "omit it for the solver's solver_mode (CPU by default)")
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
    solve.add_argument("--log-json", "--log_json", dest="log_json", metavar="FILE",
                       help="also write the training log as JSON lines to FILE: one record "
                       "per display (iteration, loss, outputs, lr, seconds, images/s) and per "
                       "test (iteration, test net, outputs), flushed as written")
    add_memory_flag(solve)
    solve.set_defaults(func=run)
