"""Time and memory to parse and compile deep generated nets: ``python -m benchmarks.compiler``.

Each net is a residual stack (ResNet's basic block: conv, BatchNorm, Scale, ReLU, conv,
BatchNorm, Scale, Eltwise sum with the block's input, ReLU) of 125 to 1000 prototxt layers, on
a small 16x8x8 input so that the compiler, not the fillers, is measured. Parsing is the text
format reader; compiling is ``Net(param, TEST)``: phase filtering, split insertion, layer
set-up with shape inference, parameter registration and the backward plan. The cost per layer
should stay flat as the depth grows (linear growth); the goal is 1000 layers in under 1 s.
Memory is tracemalloc's peak in a separate, untimed pass (tracing slows Python down).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from brewnet.log import set_level
from brewnet.net import TEST, Net
from brewnet.proto.textio import read_net

from .machine import machine_lines

SIZES = (125, 250, 500, 1000)
CHANNELS = 16


def _conv(name: str, bottom: str) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {CHANNELS} kernel_size: 3 pad: 1 '
            'bias_term: false weight_filler { type: "msra" } } }\n')


def _bn_scale(name: str, blob: str) -> str:
    return (f'layer {{ name: "{name}_bn" type: "BatchNorm" bottom: "{blob}" top: "{blob}" }}\n'
            f'layer {{ name: "{name}_scale" type: "Scale" bottom: "{blob}" top: "{blob}" '
            'scale_param { bias_term: true } }\n')


def _relu(name: str, blob: str) -> str:
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def residual_stack(layers: int) -> str:
    """A prototxt of exactly ``layers`` layers: input, stem conv, 9-layer residual blocks,
    then in-place ReLUs to make up the count."""
    if layers < 2:
        raise ValueError("a residual stack needs at least 2 layers")
    text = [f'name: "residual{layers}"\n',
            'layer { name: "data" type: "Input" top: "data" '
            f'input_param {{ shape {{ dim: 1 dim: {CHANNELS} dim: 8 dim: 8 }} }} }}\n',
            _conv("stem", "data")]
    blob = "stem"
    for b in range((layers - 2) // 9):
        a, c = f"b{b}a", f"b{b}c"
        text += [_conv(a, blob), _bn_scale(a, a), _relu(f"{a}_relu", a), _conv(c, a),
                 _bn_scale(c, c),
                 f'layer {{ name: "b{b}_sum" type: "Eltwise" bottom: "{blob}" bottom: "{c}" '
                 f'top: "b{b}_sum" }}\n', _relu(f"b{b}_relu", f"b{b}_sum")]
        blob = f"b{b}_sum"
    text += [_relu(f"tail{i}", blob) for i in range((layers - 2) % 9)]
    return "".join(text)


def measure(layers: int, repeats: int, folder: Path) -> dict[str, float]:
    """Best parse and compile seconds over ``repeats``, compiled layer count (with the
    inserted splits) and the traced peak in MiB of one parse-and-compile."""
    path = folder / f"residual{layers}.prototxt"
    path.write_text(residual_stack(layers))
    parse_s, compile_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        param = read_net(path)
        t1 = time.perf_counter()
        net = Net(param, TEST)
        t2 = time.perf_counter()
        parse_s.append(t1 - t0)
        compile_s.append(t2 - t1)
    compiled = len(net.layers)
    tracemalloc.start()
    Net(read_net(path), TEST)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"parse": min(parse_s), "compile": min(compile_s), "compiled": compiled,
            "peak_mib": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--repeats", type=int, default=5, help="measurements, best kept")
    args = ap.parse_args(argv)
    sizes = (20, 40) if args.quick else SIZES
    repeats = 1 if args.quick else args.repeats
    set_level(1)
    print("== Compiler: parse + compile of generated residual stacks ==")
    for line in machine_lines():
        print(line)
    print(f"{'layers':>7}{'compiled':>9}{'parse ms':>10}{'compile ms':>12}{'total ms':>10}"
          f"{'us/layer':>10}{'peak MiB':>10}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            r = results[n] = measure(n, repeats, Path(tmp))
            total = r["parse"] + r["compile"]
            print(f"{n:>7}{r['compiled']:>9.0f}{r['parse'] * 1e3:>10.1f}"
                  f"{r['compile'] * 1e3:>12.1f}{total * 1e3:>10.1f}{total / n * 1e6:>10.1f}"
                  f"{r['peak_mib']:>10.2f}")
    small, large = sizes[0], sizes[-1]
    growth = ((results[large]["parse"] + results[large]["compile"])
              / (results[small]["parse"] + results[small]["compile"]))
    print(f"growth {small} -> {large} layers: {growth:.1f}x time for {large / small:.0f}x "
          "layers (linear: equal)")
    if not args.quick:
        total = results[large]["parse"] + results[large]["compile"]
        verdict = "met" if total < 1 else "not met"
        print(f"1000 layers in {total:.3f} s (goal < 1 s: {verdict}); best of {repeats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
