"""Is data ever the bottleneck? ``python -m benchmarks.data``.

Times the prefetching LMDB Data layer alone (LeNet's TRAIN data layer: batch 64, scale 1/256)
delivering batches, against the rate at which LeNet's training consumes them (training on
in-memory arrays, so the consumption rate has no data cost in it); the goal is a delivery
rate at least 5x the consumption rate. It also trains with the Data layer itself, to show
what reading costs inside training. It reads examples/mnist/mnist_train_lmdb when it exists,
else a temporary LMDB of MNIST-shaped records it writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.log import set_level
from brewnet.net import TRAIN, Net
from brewnet.proto import caffe_pb2

from .lenet import BATCH, TRAIN_LMDB, brewnet_step, build_solver, mnist_like, train_net_param
from .machine import machine_lines


def write_mnist_like_lmdb(path: Path, records: int) -> None:
    """An LMDB of ``records`` random 1x28x28 uint8 Datums with labels, keyed as Caffe's
    convert tools key them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (records, 1, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, records)
    write_lmdb(path, ((f"{i:08d}", array_to_datum(images[i], int(labels[i])))
                      for i in range(records)))


def data_net_param(source: Path) -> caffe_pb2.NetParameter:
    """A net of LeNet's TRAIN Data layer alone, reading ``source``."""
    lenet = train_net_param(source)
    param = caffe_pb2.NetParameter(name="LeNet data")
    layer = next(lp for lp in lenet.layer
                 if lp.type == "Data" and lp.include[0].phase == caffe_pb2.TRAIN)
    param.layer.add().CopyFrom(layer)
    return param


def delivery_rate(source: Path, batches: int) -> float:
    """Batches per second the Data layer hands over, after a warm-up that empties the
    prefetch queue it filled while the net was being built."""
    net = Net(data_net_param(source), TRAIN)
    try:
        for _ in range(max(10, batches // 10)):
            net.forward()
        start = time.perf_counter()
        for _ in range(batches):
            net.forward()
        return batches / (time.perf_counter() - start)
    finally:
        net.close()


def training_rate(iters: int, lmdb_source: Path | None) -> float:
    """LeNet training iterations per second, on in-memory arrays or on ``lmdb_source``."""
    solver = build_solver(lmdb_source)
    try:
        if lmdb_source is None:
            solver.net.set_input_arrays(*mnist_like(20))
        brewnet_step(solver, max(2, iters // 5))
        start = time.perf_counter()
        brewnet_step(solver, iters)
        return iters / (time.perf_counter() - start)
    finally:
        solver.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--batches", type=int, default=500, help="batches delivered per sample")
    ap.add_argument("--iterations", type=int, default=100, help="training iterations per "
                    "sample")
    ap.add_argument("--repeats", type=int, default=3, help="samples, best kept")
    args = ap.parse_args(argv)
    if args.quick:
        args.batches, args.iterations, args.repeats = 5, 2, 1
    set_level(1)
    print("== Data: prefetching LMDB Data layer against LeNet's consumption (batch 64) ==")
    for line in machine_lines():
        print(line)
    with tempfile.TemporaryDirectory() as tmp:
        if TRAIN_LMDB.is_dir() and not args.quick:
            source, what = TRAIN_LMDB, "examples/mnist/mnist_train_lmdb"
        else:
            source = Path(tmp) / "mnist_like_lmdb"
            records = 2 * BATCH if args.quick else 100 * BATCH
            write_mnist_like_lmdb(source, records)
            what = f"temporary LMDB of {records} MNIST-shaped records"
        print(f"source: {what}")
        delivered = max(delivery_rate(source, args.batches) for _ in range(args.repeats))
        consumed = max(training_rate(args.iterations, None) for _ in range(args.repeats))
        with_data = max(training_rate(args.iterations, source) for _ in range(args.repeats))
    print(f"Data layer delivers        {delivered:8.1f} batches/s "
          f"({delivered * BATCH:.0f} images/s)")
    print(f"training consumes          {consumed:8.1f} batches/s (in-memory arrays)")
    print(f"training with the LMDB     {with_data:8.1f} batches/s "
          f"({100 * with_data / consumed:.0f}% of the in-memory rate)")
    ratio = delivered / consumed
    print(f"delivery / consumption: {ratio:.1f}x (goal >= 5x: "
          f"{'met' if ratio >= 5 else 'not met'}); best of {args.repeats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
