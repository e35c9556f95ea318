"""Data-parallel scaling, ``python -m benchmarks.scale [--quick]``: LeNet training images/s on
1 rank and on 2 MPI ranks (one BLAS thread each), and 1 rank with 2 threads; the all-reduce
time per iteration and how much of it ``layer_wise_reduce`` hides; the gradient bytes per
iteration of LeNet and CaffeNet, and the ring all-reduce model of benchmarks/README.md.

Each rank trains the stock LeNet solver with batch 64 on in-memory MNIST-shaped arrays
(benchmarks.lenet's MemoryData net), so N ranks train N x 64 images per iteration (weak
scaling, Caffe's rule). Exposed communication is the time a rank spends inside the gradient
exchange (packing, starting, waiting, unpacking); with layer-wise reduction part of it runs
while backward continues. The configurations alternate over ``--rounds`` rounds and each keeps
its fastest round, since on a shared machine other work slows some rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from brewnet import backend
from brewnet.log import set_level

from . import REPO

ITERS, QUICK_ITERS, WARMUP, ROUNDS = 120, 12, 5, 3
CAFFENET = Path(__file__).parent / "nets" / "caffenet_deploy.prototxt"
RESNET50_PARAMS = 25_557_032  # torchvision's count; no ResNet-50 prototxt in this repository
RESNET50_FLOPS_OVER_CAFFENET = 4.1 / 0.72  # forward GFLOP/image, published figures
BANDWIDTHS_GBPS = (10, 100)
MACHINES = (8, 64)
HOP_LATENCY_S = 20e-6  # one message on Ethernet; a ring all-reduce takes 2(N-1) of them


def _timed_sync(solver: Any, comm: Any) -> Any:
    """A GradientSync that adds up the seconds spent inside it (the exposed exchange)."""
    from brewnet.parallel.sync import GradientSync

    class TimedSync(GradientSync):
        seconds = 0.0

        def __call__(self, layer: int) -> None:
            t = time.perf_counter()
            super().__call__(layer)
            self.seconds += time.perf_counter() - t

        def on_gradients_ready(self) -> None:
            t = time.perf_counter()
            super().on_gradients_ready()
            self.seconds += time.perf_counter() - t

    return TimedSync(solver, comm)


def worker(iters: int, layer_wise: bool) -> None:
    """One rank's part (under mpiexec, or alone); rank 0 prints one JSON line."""
    from .lenet import build_solver, mnist_like

    set_level(1)
    comm: Any = None
    if "PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
        from brewnet.parallel.mpi import MpiComm

        comm = MpiComm()
        backend.set_solver_count(comm.size)
        backend.set_solver_rank(comm.rank)
    solver = build_solver()
    images, labels = mnist_like(8, seed=comm.rank if comm else 0)
    solver.net.set_input_arrays(images, labels)
    sync = None
    if comm is not None:
        sync = _timed_sync(solver, comm)
        sync.bcast()
        solver.add_callback(sync)
        if layer_wise:
            solver.net.after_backward(sync)
    solver.step(WARMUP)
    if sync is not None:
        sync.seconds = 0.0
        comm.barrier()
    start = time.perf_counter()
    solver.step(iters)
    if comm is not None:
        comm.barrier()
    seconds = time.perf_counter() - start
    ranks = comm.size if comm else 1
    allreduce_s = 0.0
    if comm is not None:  # the all-reduce alone, ranks in step: its transfer cost
        comm.barrier()
        start = time.perf_counter()
        for _ in range(20):
            comm.allreduce(sync.flat)
        allreduce_s = (time.perf_counter() - start) / 20
    if not comm or comm.rank == 0:
        print(json.dumps({
            "ranks": ranks, "images_per_s": ranks * 64 * iters / seconds,
            "ms_per_iter": 1e3 * seconds / iters,
            "exchange_ms_per_iter": 1e3 * sync.seconds / iters if sync else 0.0,
            "allreduce_ms": 1e3 * allreduce_s,
            "gradient_bytes": sync.gradient_bytes if sync else None}), flush=True)
    solver.close()


def run(ranks: int, threads: int, layer_wise: bool, iters: int) -> dict[str, Any]:
    """One configuration in fresh processes; the figures rank 0 printed."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.scale", "--worker", "--iters", str(iters)]
    if not layer_wise:
        command.append("--one-reduce")
    if ranks > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks), *command]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gradient_bytes(net_path: Path) -> int:
    """Bytes of float32 gradient a rank exchanges per iteration: every learnable parameter."""
    from brewnet.net import TEST, Net

    net = Net(str(net_path), TEST)
    try:
        return 4 * sum(int(p.count) for p in net.learnable_params)
    finally:
        net.close()


def caffenet_ms_per_image(batch: int = 2) -> float:
    """CaffeNet forward + backward on one core, per image (batch ``batch``, after one
    warm-up pass)."""
    import numpy as np

    from brewnet.net import TEST, Net
    from brewnet.proto import caffe_pb2
    from brewnet.proto.textio import read_net

    param = read_net(CAFFENET)
    param.layer[0].input_param.shape[0].dim[0] = batch
    net = Net(param, TEST)
    try:
        net.blobs["data"].data[...] = np.random.default_rng(0).random(
            net.blobs["data"].data.shape, dtype=np.float32)
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            net.forward()
            for name in net.outputs:
                net.blobs[name].diff[...] = 1
            net.backward()
            seconds.append(time.perf_counter() - start)
        del caffe_pb2
        return 1e3 * seconds[-1] / batch
    finally:
        net.close()


def ring_seconds(nbytes: float, machines: int, gbps: float) -> float:
    """Ring all-reduce: each rank sends and receives 2(N-1)/N of the buffer, in 2(N-1)
    messages."""
    steps = 2 * (machines - 1)
    return steps / machines * nbytes * 8 / (gbps * 1e9) + steps * HOP_LATENCY_S


def model_lines(nets: dict[str, tuple[int, float]]) -> list[str]:
    """Per net (gradient bytes, compute ms per iteration): all-reduce ms and scaling
    efficiency without overlap, t / (t + c), and with full overlap, t / max(t, c)."""
    lines = ["net        grad MB  compute ms/iter  " + "  ".join(
        f"{n:>2} x {g:>3} Gb/s: comm ms, eff, eff overlapped" for n in MACHINES
        for g in BANDWIDTHS_GBPS)]
    for name, (nbytes, compute_ms) in nets.items():
        cells = []
        for n in MACHINES:
            for g in BANDWIDTHS_GBPS:
                c = 1e3 * ring_seconds(nbytes, n, g)
                cells.append(f"{c:8.1f} {compute_ms / (compute_ms + c):5.0%} "
                             f"{compute_ms / max(compute_ms, c):5.0%}")
        lines.append(f"{name:<10} {nbytes / 1e6:7.1f}  {compute_ms:15.0f}  " + "  ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per configuration")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--iters", type=int, default=ITERS, help=argparse.SUPPRESS)
    ap.add_argument("--one-reduce", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.iters, not args.one_reduce)
        return 0
    iters = QUICK_ITERS if args.quick else args.iters
    print("== Data-parallel scaling: LeNet, batch 64 per rank, MPI on this machine")
    if shutil.which("mpiexec") is None and not (Path(sys.executable).parent / "mpiexec").exists():
        print("mpiexec not found: pip install 'brewnet[mpi]'")
        return 0
    configs = {"one": (1, 1, True), "two_threads": (1, 2, True), "layer_wise": (2, 1, True),
               "one_reduce": (2, 1, False)}
    best: dict[str, dict[str, Any]] = {}
    for _ in range(1 if args.quick else args.rounds):
        for name, (ranks, threads, layer_wise_reduce) in configs.items():
            r = run(ranks, threads, layer_wise_reduce, iters)
            if name not in best or r["images_per_s"] > best[name]["images_per_s"]:
                best[name] = r
    one, two_threads = best["one"], best["two_threads"]
    layer_wise, one_reduce = best["layer_wise"], best["one_reduce"]
    print(f"1 rank,  1 thread : {one['images_per_s']:7.0f} images/s "
          f"({one['ms_per_iter']:.1f} ms/iter)")
    print(f"1 rank,  2 threads: {two_threads['images_per_s']:7.0f} images/s "
          f"({two_threads['images_per_s'] / one['images_per_s']:.2f}x)")
    for label, r in (("layer_wise_reduce: true ", layer_wise),
                     ("layer_wise_reduce: false", one_reduce)):
        print(f"2 ranks, 1 thread each, {label}: {r['images_per_s']:7.0f} images/s "
              f"({r['images_per_s'] / one['images_per_s']:.2f}x), exchange "
              f"{r['exchange_ms_per_iter']:.2f} ms/iter of {r['ms_per_iter']:.1f}")
    print(f"all-reduce of the {one_reduce['gradient_bytes']} gradient bytes alone (ranks in "
          f"step): {one_reduce['allreduce_ms']:.2f} ms; the rest of the exchange is waiting for "
          "the slower rank")
    full, exposed = one_reduce["exchange_ms_per_iter"], layer_wise["exchange_ms_per_iter"]
    print(f"layer-wise reduction hides {max(0.0, full - exposed):.2f} ms of "
          f"{full:.2f} ms per iteration ({max(0.0, full - exposed) / full:.0%})"
          if full else "no exchange measured")
    lenet_bytes = int(one_reduce["gradient_bytes"])
    caffenet_bytes = gradient_bytes(CAFFENET)
    caffenet_ms = caffenet_ms_per_image() * 256
    nets = {"LeNet": (lenet_bytes, one["ms_per_iter"]),
            "CaffeNet": (caffenet_bytes, caffenet_ms),
            "ResNet-50": (4 * RESNET50_PARAMS,
                          caffenet_ms * RESNET50_FLOPS_OVER_CAFFENET / 256 * 32)}
    print(f"gradient bytes per iteration (measured): LeNet {lenet_bytes}, CaffeNet "
          f"{caffenet_bytes}; ResNet-50 {4 * RESNET50_PARAMS} (from its parameter count)")
    print("ring all-reduce model (per rank: LeNet batch 64, CaffeNet 256, ResNet-50 32; "
          "compute on one core of this machine, ResNet-50 scaled from CaffeNet by FLOPs):")
    for line in model_lines(nets):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
