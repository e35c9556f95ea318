"""Is data ever the bottleneck? ``python -m benchmarks.data``.

Times the prefetching LMDB Data layer alone (LeNet's TRAIN data layer: batch 64, scale 1/256)
delivering batches, against the rate at which LeNet's training consumes them (training on
in-memory arrays, so the consumption rate has no data cost in it); the goal is a delivery
rate at least 5x the consumption rate. It also trains with the Data layer itself, to show
what reading costs inside training. It reads examples/mnist/mnist_train_lmdb when it exists,
else a temporary LMDB of MNIST-shaped records it writes.

Then encoded records, the way ImageNet-sized data is stored: a temporary LMDB of 256x256 JPEG
Datums (``encoded: true``, as ``convert_imageset -encoded`` writes them) read by a Data layer
with ``crop_size: 227``, ``mirror`` and mean values, with 1 decoding worker and with all
(``BREWNET_DATA_WORKERS``). The limit is Pillow's decoding alone of the same files on one
thread, times the cores; the goals are 0.8 of that limit and 5x what CaffeNet training
(benchmarks/nets/caffenet_deploy.prototxt with a softmax loss, SGD) consumes here.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from brewnet.data.datum import array_to_datum
from brewnet.data.image import opencv_module
from brewnet.data.lmdb_source import write_lmdb
from brewnet.data.workers import ENV as WORKERS_ENV
from brewnet.log import set_level
from brewnet.net import TRAIN, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import read_net
from brewnet.solver import get_solver

from . import REPO
from .lenet import BATCH, TRAIN_LMDB, brewnet_step, build_solver, mnist_like, train_net_param
from .machine import machine_lines

CAFFENET = REPO / "benchmarks" / "nets" / "caffenet_deploy.prototxt"
JPEG_SIZE, CROP = 256, 227


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


def photo_like(seed: int, size: int = JPEG_SIZE) -> np.ndarray:
    """A (size, size, 3) uint8 picture with smooth shapes and grain: it compresses and
    decodes like a photograph (about 27 kB at quality 90), unlike pure noise or flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    for c in range(3):
        a, b, f = rng.uniform(0, 1, 3)
        img[..., c] = (128 + 80 * np.sin(2 * np.pi * (3 * a * x + 3 * b * y) + 6 * f)
                       + 30 * np.cos(16 * np.pi * f * x * y))
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg_lmdb(path: Path, records: int, size: int = JPEG_SIZE) -> list[bytes]:
    """An LMDB of ``records`` encoded Datums (JPEG files, channels/height/width left 0 as
    ``convert_imageset -encoded`` leaves them); returns the JPEG files."""
    files = []
    for i in range(records):
        buf = io.BytesIO()
        Image.fromarray(photo_like(i, size)).save(buf, "JPEG", quality=90)
        files.append(buf.getvalue())
    write_lmdb(path, ((f"{i:08d}", caffe_pb2.Datum(encoded=True, data=data, label=i % 1000))
                      for i, data in enumerate(files)))
    return files


def decoder_name() -> str:
    """The decoder brewnet uses for these JPEG files (``brewnet.data.image``'s choice)."""
    return "Pillow" if opencv_module() is None else "OpenCV"


def decoder_rate(files: list[bytes], repeats: int, threads: int = 1) -> float:
    """Images/s of brewnet's JPEG decoder (OpenCV where installed, else Pillow) decoding
    ``files`` on ``threads`` threads, nothing else: with one, the limit per core; with all,
    what the machine gives decoding alone at the moment."""
    cv2 = opencv_module()

    def decode(part: list[bytes]) -> None:
        if cv2 is None:
            for data in part:
                Image.open(io.BytesIO(data)).load()
            return
        flag = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
        for data in part:
            cv2.imdecode(np.frombuffer(data, np.uint8), flag)

    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(decode, [files[k::threads] for k in range(threads)]))
            best = max(best, len(files) / (time.perf_counter() - start))
    return best


def jpeg_net_param(source: Path, batch: int) -> caffe_pb2.NetParameter:
    """A net of one TRAIN Data layer reading JPEG records as CaffeNet's does: 227 crops,
    mirror, a mean per channel."""
    param = caffe_pb2.NetParameter(name="JPEG data")
    layer = param.layer.add(name="data", type="Data", top=["data", "label"])
    layer.transform_param.crop_size = CROP
    layer.transform_param.mirror = True
    layer.transform_param.mean_value.extend([104, 117, 123])
    layer.data_param.source = str(source)
    layer.data_param.backend = caffe_pb2.DataParameter.LMDB
    layer.data_param.batch_size = batch
    return param


def jpeg_delivery_rate(source: Path, batch: int, batches: int, workers: int) -> float:
    """Images/s the JPEG Data layer hands over with ``workers`` decoding threads."""
    os.environ[WORKERS_ENV] = str(workers)
    try:
        net = Net(jpeg_net_param(source, batch), TRAIN)
    finally:
        del os.environ[WORKERS_ENV]
    try:
        net.forward()  # the first batch, and the prefetch queue filling meanwhile
        for _ in range(net.layers[0].param.data_param.prefetch):
            net.forward()  # empty the queue so only steady-state production is timed
        start = time.perf_counter()
        for _ in range(batches):
            net.forward()
        return batches * batch / (time.perf_counter() - start)
    finally:
        net.close()


def caffenet_training_rate(batch: int, iters: int) -> float:
    """Images/s of CaffeNet training (forward, backward, SGD update) on in-memory inputs."""
    net = read_net(str(CAFFENET))
    net.layer[0].top.append("label")
    shape = net.layer[0].input_param.shape
    shape[0].dim[0] = batch
    shape.add().dim.append(batch)
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc8", "label"], top=["loss"])
    solver_param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, weight_decay=5e-4,
                                             lr_policy="fixed", max_iter=1 << 30)
    solver_param.net_param.CopyFrom(net)
    solver = get_solver(solver_param)
    try:
        rng = np.random.default_rng(0)
        solver.net.blobs["data"].data[...] = rng.random((batch, 3, CROP, CROP), np.float32)
        solver.net.blobs["label"].data[...] = rng.integers(0, 1000, batch)
        solver.step(1)  # warm-up
        start = time.perf_counter()
        solver.step(iters)
        return iters * batch / (time.perf_counter() - start)
    finally:
        solver.close()


def jpeg_section(args: argparse.Namespace) -> None:
    """The encoded-records comparison: decoder limit, 1 and all workers, CaffeNet."""
    cores = len(os.sched_getaffinity(0))
    batch = 4 if args.quick else 64
    print(f"== Data: {JPEG_SIZE}x{JPEG_SIZE} JPEG records -> crop {CROP} + mirror + mean "
          f"(batch {batch}) ==")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "jpeg_lmdb"
        files = write_jpeg_lmdb(source, 2 * batch if args.quick else 512)
        kb = sum(map(len, files)) / len(files) / 1024
        print(f"source: temporary LMDB of {len(files)} JPEG records, {kb:.1f} kB each "
              "(quality 90)")
        per_core = decoder_rate(files, args.repeats)
        limit = per_core * cores
        together = decoder_rate(files, args.repeats, cores)
        rates = {}
        for workers in sorted({1, cores}):
            rates[workers] = max(jpeg_delivery_rate(source, batch, args.jpeg_batches, workers)
                                 for _ in range(args.repeats))
    name = decoder_name()
    print(f"{name} decoding alone, 1 thread  {per_core:8.1f} images/s; limit "
          f"{per_core:.1f} x {cores} cores = {limit:.1f} images/s")
    print(f"{name} decoding alone, {cores} threads {together:8.1f} images/s "
          f"({together / limit:.2f} of the limit: the machine's share at the moment)")
    for workers, rate in rates.items():
        print(f"Data layer, {workers} worker(s)         {rate:8.1f} images/s "
              f"({rate / limit:.2f} of the limit)")
    best = rates[cores]
    print(f"all workers / limit: {best / limit:.2f} (goal >= 0.8: "
          f"{'met' if best >= 0.8 * limit else 'not met'}); best of {args.repeats}")
    if args.quick:
        print("CaffeNet training: not measured with --quick")
        return
    consumed = max(caffenet_training_rate(args.caffenet_batch, args.caffenet_iterations)
                   for _ in range(args.repeats))
    print(f"CaffeNet training consumes       {consumed:8.1f} images/s (batch "
          f"{args.caffenet_batch}, in-memory inputs)")
    print(f"delivery / consumption: {best / consumed:.1f}x (goal >= 5x: "
          f"{'met' if best >= 5 * consumed else 'not met'})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--batches", type=int, default=500, help="batches delivered per sample")
    ap.add_argument("--iterations", type=int, default=100, help="training iterations per "
                    "sample")
    ap.add_argument("--repeats", type=int, default=3, help="samples, best kept")
    ap.add_argument("--jpeg-batches", type=int, default=16, help="JPEG batches per sample")
    ap.add_argument("--caffenet-batch", type=int, default=8, help="CaffeNet training batch")
    ap.add_argument("--caffenet-iterations", type=int, default=3, help="CaffeNet training "
                    "iterations per sample")
    ap.add_argument("--only-jpeg", action="store_true", help="just the JPEG records")
    args = ap.parse_args(argv)
    if args.quick:
        args.batches, args.iterations, args.repeats, args.jpeg_batches = 5, 2, 1, 2
    set_level(1)
    if args.only_jpeg:
        jpeg_section(args)
        return 0
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
    jpeg_section(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
