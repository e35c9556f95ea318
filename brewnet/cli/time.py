"""``brewnet time --model NET``: Caffe's time command — average forward, backward and
per-layer milliseconds in Caffe's log wording, plus each layer's share of the time and the
memory it holds."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from ..errors import BrewnetError
from ..log import log
from ..net.timing import NetTiming, time_net
from ..solver.report import num
from .netargs import add_net_arguments, open_net


def size_text(n: int) -> str:
    """Bytes as ``8 B``, ``1.5 KiB`` or ``3.1 MiB``."""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def report_lines(result: NetTiming) -> Iterator[str]:
    """The summary ``caffe time`` logs (its wording and number format, layer names padded to
    10 columns), then brewnet's table of each layer's share of the summed layer time and the
    bytes it holds."""
    yield "Average time per layer: "
    for t in result.layers:
        yield f"{t.name:>10}\tforward: {num(t.forward_ms)} ms."
        yield f"{t.name:>10}\tbackward: {num(t.backward_ms)} ms."
    yield f"Average Forward pass: {num(result.forward_ms)} ms."
    yield f"Average Backward pass: {num(result.backward_ms)} ms."
    yield f"Average Forward-Backward: {num(result.forward_backward_ms)} ms."
    yield f"Total Time: {num(result.total_ms)} ms."
    yield "Layer share of time, memory held (tops + params, data and diff):"
    for t in result.layers:
        yield (f"{t.name:>10}\tshare: {100 * result.share(t):.1f}%\tmemory: "
               f"{size_text(t.memory_bytes)} (tops {size_text(t.top_bytes)} + params "
               f"{size_text(t.param_bytes)})")
    total = sum(t.memory_bytes for t in result.layers)
    yield f"{'all':>10}\tmemory: {size_text(total)}"


def run(args: argparse.Namespace) -> int:
    if args.iterations < 1:
        raise BrewnetError(f"--iterations {args.iterations}: give a positive count")
    net, _ = open_net(args)
    try:
        log.info("Performing Forward")
        log.info(f"Initial loss: {num(net.forward_loss())}")
        log.info("Performing Backward")
        net.backward()
        log.info("*** Benchmark begins ***")
        log.info(f"Testing for {args.iterations} iterations.")
        result = time_net(net, args.iterations, on_iteration=lambda j, ms: log.info(
            f"Iteration: {j} forward-backward time: {num(ms)} ms."))
        for line in report_lines(result):
            log.info(line)
        log.info("*** Benchmark ends ***")
    finally:
        net.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("time", help="time a net's forward and backward passes, layer by layer")
    add_net_arguments(p, default_phase="TRAIN")
    p.add_argument("--iterations", type=int, default=50,
                   help="timed forward/backward passes after one warm-up (default 50)")
    p.set_defaults(func=run)
