"""Inference throughput, brewnet against PyTorch: ``python -m benchmarks.inference``.

The LeNet deploy net (examples/mnist/lenet.prototxt) and CaffeNet's deploy net
(benchmarks/nets/caffenet_deploy.prototxt) forward at batch 1, 64 and 256, brewnet's Net in
TEST phase against its PyTorch twin (same weights, ``inference_mode``, eval), alternated in
rounds after a warm-up, with as many threads as NumPy's BLAS. The two outputs are compared
first, so both compute the same thing.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from brewnet.log import set_level
from brewnet.net import TEST, Net

from . import REPO
from .machine import blas_threads, machine_lines, settle, summary, torch_or_none
from .torch_twin import torch_twin

NETS = {"lenet": REPO / "examples" / "mnist" / "lenet.prototxt",
        "caffenet": REPO / "benchmarks" / "nets" / "caffenet_deploy.prototxt"}
BATCHES = (1, 64, 256)
# Seconds of work each timed sample aims at: long enough for the clock, short for the machine.
SAMPLE_SECONDS = 0.3


def _calls_for(fn: Any, seconds: float) -> int:
    """How many calls of ``fn`` fill about ``seconds`` (one call, timed, decides)."""
    start = time.perf_counter()
    fn()
    return max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))


def bench_net(name: str, batches: list[int], rounds: int, torch: Any,
              seconds: float = SAMPLE_SECONDS) -> dict[int, dict[str, Any]]:
    """Per batch size: best and median images/s of each framework for net ``name``, and
    the largest difference between their outputs. The net is built once and reshaped."""
    net = Net(NETS[name], TEST)
    model = torch_twin(torch, net).eval() if torch is not None else None
    try:
        return {batch: _bench_batch(net, model, batch, rounds, torch, seconds)
                for batch in batches}
    finally:
        net.close()


def _bench_batch(net: Net, model: Any, batch: int, rounds: int, torch: Any,
                 seconds: float) -> dict[str, Any]:
    data = net.blobs[net.inputs[0]]
    data.reshape(batch, *data.shape[1:])
    net.reshape()
    x = np.random.default_rng(0).random(tuple(data.shape), dtype=np.float32)
    data.data[...] = x
    runners = {"brewnet": lambda: net.forward()}
    result: dict[str, Any] = {}
    if model is not None:
        tx = torch.from_numpy(x)

        def torch_forward() -> Any:
            with torch.inference_mode():
                return model(tx)

        runners["pytorch"] = torch_forward
        mine = net.forward()[net.outputs[0]]
        result["max_abs_diff"] = float(np.abs(mine - torch_forward().numpy()).max())
    calls = {k: _calls_for(fn, seconds) for k, fn in runners.items()}  # also the warm-up
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, fn in runners.items():
            settle()
            start = time.perf_counter()
            for _ in range(calls[k]):
                fn()
            rates[k].append(calls[k] * batch / (time.perf_counter() - start))
    result.update({k: summary(r) for k, r in rates.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds (default 5)")
    ap.add_argument("--nets", default="lenet,caffenet", help="comma-separated: lenet,caffenet")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)),
                    help="comma-separated batch sizes (default 1,64,256)")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    seconds = SAMPLE_SECONDS
    if args.quick:
        args.rounds, batches, seconds = 1, [2], 0.0
    set_level(1)
    torch = torch_or_none(blas_threads())
    print("== Inference (deploy nets, TEST phase, float32) ==")
    for line in machine_lines(torch, peer=True):
        print(line)
    print(f"{'net':<10}{'batch':>6}{'brewnet img/s':>15}{'pytorch img/s':>15}{'ratio':>8}"
          f"{'max |diff|':>12}")
    for name in args.nets.split(","):
        for batch, r in bench_net(name, batches, args.rounds, torch, seconds).items():
            mine = r["brewnet"][0]
            if torch is None:
                print(f"{name:<10}{batch:>6}{mine:>15.1f}{'-':>15}{'-':>8}{'-':>12}")
                continue
            peer = r["pytorch"][0]
            print(f"{name:<10}{batch:>6}{mine:>15.1f}{peer:>15.1f}{mine / peer:>7.2f}x"
                  f"{r['max_abs_diff']:>12.1e}")
    print("(best of the rounds; goal: ratio >= 1.0 at batch 64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
