"""Per-layer forward and backward milliseconds of LeNet's TRAIN net (batch 64):
``python -m benchmarks.layers``.

The figures come from brewnet.net.timing, the code behind ``brewnet time``, so they are what
``brewnet time --model examples/mnist/lenet_train_test.prototxt`` prints. The net reads the
example LMDB when it exists, in-memory arrays (MemoryData) otherwise. The measurement is
repeated and each layer's best kept, since other work on the machine only adds time.
"""

from __future__ import annotations

import argparse
import sys

from brewnet.log import set_level
from brewnet.net import TRAIN, Net
from brewnet.net.timing import LayerTiming, NetTiming, time_net

from .lenet import TRAIN_LMDB, mnist_like, train_net_param
from .machine import machine_lines


def lenet_net() -> tuple[Net, str]:
    """LeNet's TRAIN net and a word on where its data comes from."""
    if TRAIN_LMDB.is_dir():
        return Net(train_net_param(TRAIN_LMDB), TRAIN), "LMDB Data layer"
    net = Net(train_net_param(), TRAIN)
    net.set_input_arrays(*mnist_like(10))
    return net, "MemoryData over in-memory arrays (no example LMDB)"


def best_of(results: list[NetTiming]) -> NetTiming:
    """Per layer and per total, the smallest time of the repeats."""
    first = results[0]
    layers = [LayerTiming(t.name, t.type, min(r.layers[i].forward_ms for r in results),
                          min(r.layers[i].backward_ms for r in results), t.top_bytes,
                          t.param_bytes) for i, t in enumerate(first.layers)]
    best = NetTiming(first.iterations, layers)
    best.forward_ms = min(r.forward_ms for r in results)
    best.backward_ms = min(r.backward_ms for r in results)
    best.total_ms = min(r.total_ms for r in results)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--repeats", type=int, default=5, help="measurements, best kept")
    ap.add_argument("--iterations", type=int, default=20, help="passes per measurement")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.iterations = 1, 1
    set_level(1)
    net, source = lenet_net()
    print(f"== LeNet per layer (TRAIN, batch 64, data: {source}) ==")
    for line in machine_lines():
        print(line)
    try:
        net.forward_loss()
        net.backward()
        result = best_of([time_net(net, args.iterations) for _ in range(args.repeats)])
    finally:
        net.close()
    print(f"{'layer':<8}{'type':<16}{'forward ms':>11}{'backward ms':>12}{'share':>8}"
          f"{'memory KiB':>12}")
    for t in result.layers:
        print(f"{t.name:<8}{t.type:<16}{t.forward_ms:>11.3f}{t.backward_ms:>12.3f}"
              f"{100 * result.share(t):>7.1f}%{t.memory_bytes / 1024:>12.1f}")
    print(f"forward {result.forward_ms:.3f} ms, backward {result.backward_ms:.3f} ms, "
          f"forward-backward {result.forward_backward_ms:.3f} ms "
          f"({64e3 / result.forward_backward_ms:.0f} images/s without the update); "
          f"best of {args.repeats} x {args.iterations} passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
