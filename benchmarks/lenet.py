"""LeNet training throughput, brewnet against PyTorch: ``python -m benchmarks.lenet``.

brewnet trains the stock ``examples/mnist/lenet_train_test.prototxt`` TRAIN net with the stock
solver (SGD, lr 0.01, momentum 0.9, weight decay 5e-4, ``inv`` policy), its Data layer
swapped for a MemoryData layer over in-memory MNIST-shaped arrays. PyTorch trains the same
chain (benchmarks.torch_twin) from the same initial weights (brewnet's xavier draw) with
Caffe's update rule written in torch ops, on the same arrays in the same order. Data loading
is thus out of the comparison; brewnet with its real LMDB Data layer is timed beside them when
``examples/mnist/mnist_train_lmdb`` exists. The frameworks alternate in rounds in one process,
each after a warm-up, with as many threads as NumPy's BLAS; peak memory is measured in a
separate process per framework (``--peak``), since one process would mix them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from brewnet.log import set_level
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import read_net, read_solver
from brewnet.solver import get_solver

from . import REPO
from .machine import blas_threads, machine_lines, peak_rss_mib, settle, summary, torch_or_none
from .torch_twin import torch_twin

MNIST = REPO / "examples" / "mnist"
TRAIN_NET = MNIST / "lenet_train_test.prototxt"
SOLVER = MNIST / "lenet_solver.prototxt"
TRAIN_LMDB = MNIST / "mnist_train_lmdb"
BATCH = 64


def mnist_like(batches: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``batches * 64`` images (N, 1, 28, 28) in [0, 1) as the Data layer's 1/256 scale makes
    them, and labels (N,) 0..9, both float32."""
    rng = np.random.default_rng(seed)
    n = batches * BATCH
    images = (rng.integers(0, 256, (n, 1, 28, 28)) / 256).astype(np.float32)
    return images, rng.integers(0, 10, n).astype(np.float32)


def train_net_param(source: Path | None = None) -> caffe_pb2.NetParameter:
    """The stock LeNet; its TRAIN Data layer reads the LMDB ``source`` or, without one,
    becomes a MemoryData layer of 64 images."""
    param = read_net(TRAIN_NET)
    for lp in param.layer:
        if lp.type != "Data" or lp.include[0].phase != caffe_pb2.TRAIN:
            continue
        if source is not None:
            lp.data_param.source = str(source)
            continue
        lp.type = "MemoryData"
        lp.ClearField("data_param")
        lp.ClearField("transform_param")
        lp.memory_data_param.batch_size = BATCH
        lp.memory_data_param.channels = 1
        lp.memory_data_param.height = lp.memory_data_param.width = 28
    return param


def build_solver(source: Path | None = None) -> Any:
    """The stock solver training ``train_net_param(source)``, with no tests, display or
    snapshots (they are not part of the training speed)."""
    param = read_solver(SOLVER)
    param.ClearField("net")
    param.net_param.CopyFrom(train_net_param(source))
    param.ClearField("test_iter")
    param.test_interval = param.display = param.snapshot = 0
    param.snapshot_after_train = False
    param.max_iter = 1 << 30
    return get_solver(param)


class TorchTrainer:
    """PyTorch training the twin of ``solver.net`` with Caffe's SGD: per parameter
    ``g += wd·decay_mult·w; V = μ·V + rate·lr_mult·g; w -= V`` and the ``inv`` schedule."""

    def __init__(self, torch: Any, solver: Any, images: np.ndarray, labels: np.ndarray):
        self.torch = torch
        self.model = torch_twin(torch, solver.net)
        self.p = solver.param
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.batches = len(images) // BATCH
        self.iter = 0
        groups: dict[tuple[float, float], list[Any]] = {}
        net = solver.net
        for param, lr, decay in zip(self.model.parameters(), net.params_lr,
                                    net.params_weight_decay, strict=True):
            groups.setdefault((lr, decay), []).append(param)
        self.groups = [(lr, decay, params, [torch.zeros_like(q) for q in params])
                       for (lr, decay), params in groups.items()]

    def rate(self) -> float:
        p = self.p
        return p.base_lr * (1 + p.gamma * self.iter) ** (-p.power)

    def step(self, iters: int) -> float:
        """Train ``iters`` iterations; return the last loss."""
        torch, F = self.torch, self.torch.nn.functional
        loss = torch.zeros(())
        for _ in range(iters):
            b = self.iter % self.batches
            x = self.images[b * BATCH:(b + 1) * BATCH]
            y = self.labels[b * BATCH:(b + 1) * BATCH]
            for q in self.model.parameters():
                q.grad = None
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            rate = self.rate()
            with torch.no_grad():
                for lr, decay, params, history in self.groups:
                    grads = [q.grad for q in params]
                    torch._foreach_add_(grads, params, alpha=self.p.weight_decay * decay)
                    torch._foreach_mul_(history, self.p.momentum)
                    torch._foreach_add_(history, grads, alpha=rate * lr)
                    torch._foreach_sub_(params, history)
            self.iter += 1
        return float(loss.detach())


def brewnet_step(solver: Any, iters: int) -> float:
    """Train ``iters`` iterations; return the last forward pass's loss."""
    solver.step(iters)
    return float(solver.net.blobs["loss"].data)


def _rates(fn: Any, iters: int) -> tuple[float, float]:
    """Images per wall second and per CPU second of this process (all its threads): on a
    loaded machine the second is the steadier, with one thread it is the quiet-machine rate."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(iters)
    images = iters * BATCH
    return (images / (time.perf_counter() - wall),
            images / max(time.process_time() - cpu, 1e-9))


def peak_child(which: str, iters: int, batches: int) -> dict[str, float]:
    """Run one framework alone for ``iters`` iterations (after setting up the same data) and
    report this process's peak memory."""
    images, labels = mnist_like(batches)
    solver = build_solver(TRAIN_LMDB if which == "brewnet-lmdb" else None)
    if which == "torch":
        torch = torch_or_none(blas_threads())
        trainer = TorchTrainer(torch, solver, images, labels)
        solver.close()
        del solver
        trainer.step(iters)
    else:
        if which == "brewnet":
            solver.net.set_input_arrays(images, labels)
        solver.step(iters)
        solver.close()
    return {"peak_rss_mib": peak_rss_mib()}


def measure_peak(which: str, iters: int, batches: int) -> float | None:
    """Peak RSS in MiB of a child process training with ``which``; None if it failed."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.lenet", "--peak", which,
                          "--iterations", str(iters), "--batches", str(batches)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        print(f"  peak memory of {which} not measured: {out.stderr.strip()[-300:]}")
        return None
    return float(json.loads(lines[-1])["peak_rss_mib"])


def run(rounds: int, iters: int, batches: int, check_iters: int) -> dict[str, Any]:
    """Alternate the frameworks for ``rounds`` rounds of ``iters`` iterations each; return
    the best and median images/s and the best images per CPU second of each; first print
    how far the losses of ``check_iters`` iterations of the two frameworks differ."""
    set_level(1)  # the solvers' set-up lines would drown the figures
    threads = blas_threads()
    torch = torch_or_none(threads)
    for line in machine_lines(torch, peer=True):
        print(line)
    images, labels = mnist_like(batches)
    solver = build_solver()
    solver.net.set_input_arrays(images, labels)
    runners = {"brewnet": lambda n: brewnet_step(solver, n)}
    if torch is not None:
        trainer = TorchTrainer(torch, solver, images, labels)  # before brewnet's first update
        runners["pytorch"] = trainer.step
        losses = [(brewnet_step(solver, 1), trainer.step(1)) for _ in range(check_iters)]
        worst = max(abs(a - b) for a, b in losses)
        print(f"same computation: losses of the first {check_iters} iterations differ by at "
              f"most {worst:.2e} (brewnet {losses[-1][0]:.5f}, pytorch {losses[-1][1]:.5f})")
    lmdb_solver = None
    if TRAIN_LMDB.is_dir():
        lmdb_solver = build_solver(TRAIN_LMDB)
        runners["brewnet-lmdb"] = lambda n: brewnet_step(lmdb_solver, n)
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    try:
        for fn in runners.values():
            fn(max(2, iters // 5))  # warm-up: first-call allocations, thread pools, caches
        for _ in range(rounds):
            for name, fn in runners.items():
                settle()
                rates[name].append(_rates(fn, iters))
    finally:
        solver.close()
        if lmdb_solver is not None:
            lmdb_solver.close()
    return {name: (*summary([w for w, _ in r]), max(c for _, c in r))
            for name, r in rates.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--rounds", type=int, default=7, help="alternated rounds (default 7)")
    ap.add_argument("--iterations", type=int, default=50, help="iterations per round")
    ap.add_argument("--batches", type=int, default=100,
                    help="distinct batches in the in-memory data set (default 100)")
    ap.add_argument("--no-memory", action="store_true",
                    help="skip the peak-memory child processes")
    ap.add_argument("--peak", choices=("brewnet", "brewnet-lmdb", "torch"),
                    help=argparse.SUPPRESS)  # the child process of the memory measurement
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.iterations, args.batches = 1, 2, 2
    if args.peak:
        set_level(1)
        print(json.dumps(peak_child(args.peak, args.iterations, args.batches)))
        return 0
    print("== LeNet training (batch 64, SGD as lenet_solver.prototxt, float32) ==")
    result = run(args.rounds, args.iterations, args.batches, 2 if args.quick else 5)
    print(f"{'framework':<28}{'best images/s':>14}{'median':>8}{'per CPU-s':>11}"
          f"{'peak MiB':>10}")
    peak_iters = args.iterations  # memory is steady after the first iterations
    labels = {"brewnet": "brewnet (in-memory)", "pytorch": "pytorch (same arrays)",
              "brewnet-lmdb": "brewnet (LMDB Data layer)"}
    peaks = {}
    for name, (best, median, per_cpu) in result.items():
        peaks[name] = None if args.no_memory else measure_peak(
            "torch" if name == "pytorch" else name, peak_iters, args.batches)
        peak = f"{peaks[name]:.0f}" if peaks[name] is not None else "-"
        print(f"{labels[name]:<28}{best:>14.0f}{median:>8.0f}{per_cpu:>11.0f}{peak:>10}")
    if "pytorch" in result:
        ratio = result["brewnet"][0] / result["pytorch"][0]
        cpu_ratio = result["brewnet"][2] / result["pytorch"][2]
        print(f"ratio brewnet/pytorch (best images/s): {ratio:.2f}x  (goal >= 1.0); per CPU "
              f"second: {cpu_ratio:.2f}x")
        if peaks["brewnet"] and peaks["pytorch"]:
            print(f"peak memory brewnet/pytorch: {peaks['brewnet'] / peaks['pytorch']:.2f}x  "
                  "(goal <= 1.0)")
    else:
        print("pytorch: not installed, no ratio (pip install torch to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
