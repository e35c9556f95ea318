"""Modern nets, brewnet against its peers: ``python -m benchmarks.modern``.

ResNet-50, MobileNet v2, GoogLeNet (batch 8 at 224x224), SqueezeNet 1.1 and CaffeNet (batch 8
at 227x227) and CIFAR-10 quick and full (batch 100), from ``modern_nets.py``. Training: one
iteration is forward, backward and a plain SGD step (``w -= lr*g``, diffs cleared) in brewnet
(TRAIN net, DummyData; the loss is the net's, every loss weighted) and in its PyTorch twin
(``TorchGraph``, same weights, same batch), alternated in rounds after a warm-up. Inference: the
deploy net (TEST, BatchNorm on stored statistics) at batch 1 and 16 against the twin in
``inference_mode``, against onnxruntime running brewnet's own ONNX export and against OpenCV
DNN (``cv2.dnn.readNetFromCaffe``) reading brewnet's deploy prototxt and a .caffemodel
brewnet wrote. Each block runs
at 1 and 2 threads (OpenBLAS's count, torch's intra-op threads, onnxruntime's intra-op
threads). Outputs are compared first. Peak memory: one child process per framework
(``--peak``), each running a few training iterations alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf import text_format

from brewnet.log import set_level
from brewnet.net import TEST, TRAIN, Net

from . import REPO
from .machine import (
    machine_lines,
    peak_rss_mib,
    second_core_reading,
    set_blas_threads,
    settle,
    summary,
    torch_or_none,
)
from .modern_nets import NETS
from .torch_twin import TorchGraph

TRAIN_BATCH = {"resnet50": 8, "mobilenet_v2": 8, "squeezenet1_1": 8, "googlenet": 8,
               "caffenet": 8, "cifar10_quick": 100, "cifar10_full": 100}
SIZE = {"resnet50": 224, "mobilenet_v2": 224, "squeezenet1_1": 227, "googlenet": 224,
        "caffenet": 227, "cifar10_quick": 32, "cifar10_full": 32}
LR = np.float32(1e-4)


def _net(name: str, train: bool, batch: int, size: int) -> Net:
    """The net with seeded random weights and, for TEST, plausible stored BatchNorm sums."""
    np.random.seed(1)  # brewnet's fillers draw from NumPy's global generator, as Caffe's RNG
    net = Net(NETS[name](train, batch=batch, size=size), phase=TRAIN if train else TEST)
    rng = np.random.default_rng(2)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            c = layer.blobs[0].data.shape[0]
            layer.blobs[0].data[...] = rng.normal(0, 0.1, c)
            layer.blobs[1].data[...] = rng.uniform(0.5, 1.5, c)
            layer.blobs[2].data[...] = 1
    return net


def _batch(net: Net, classes: int) -> tuple[np.ndarray, np.ndarray]:
    shape = tuple(net.blobs["data"].shape)
    rng = np.random.default_rng(0)
    return (rng.random(shape, dtype=np.float32),
            rng.integers(0, classes, shape[0]).astype(np.float32))


def brewnet_step(net: Net) -> Callable[[], float]:
    """One training iteration of ``net`` (its data blobs already filled); returns the net's
    loss (every loss top times its weight)."""
    learnable = net.learnable_params

    def step() -> float:
        loss = net.forward_backward()
        for blob in learnable:
            blob.diff *= -LR
            blob.data += blob.diff
        net.clear_param_diffs()
        return loss
    return step


def torch_step(torch: Any, graph: TorchGraph, x: np.ndarray, y: np.ndarray
               ) -> Callable[[], float]:
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()

    def step() -> float:
        graph(tx, ty)
        loss = graph.loss
        for p in graph.params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in graph.params:
                p.sub_(p.grad, alpha=float(LR))
        return float(loss.detach())
    return step


def _alternate(runners: dict[str, Callable[[], Any]], rounds: int, calls: int
               ) -> dict[str, tuple[float, float]]:
    """Best and median seconds per call of each runner, alternated round by round. Each turn
    starts with one untimed call after the settling wait: a turn of one timed call (a
    training iteration, a batch of 16) would otherwise time cores just woken from the wait
    (brewnet's CIFAR-10 full iteration at 2 threads 86 ms that way, 63-66 ms back to back)."""
    for fn in runners.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, fn in runners.items():
            settle()
            fn()  # this runner's own threads and cores awake again
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[k].append((time.perf_counter() - start) / calls)
    return {k: tuple(1 / r for r in summary([1 / t for t in v])) for k, v in times.items()}


def train_block(name: str, threads: int, rounds: int, torch: Any, size: int,
                batch: int) -> dict[str, Any]:
    set_blas_threads(threads)
    net = _net(name, True, batch, size)
    x, y = _batch(net, net.blobs["fc"].shape[1])
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    runners = {"brewnet": brewnet_step(net)}
    result: dict[str, Any] = {}
    if torch is not None:
        torch.set_num_threads(threads)
        graph = TorchGraph(torch, net)
        runners["pytorch"] = torch_step(torch, graph, x, y)
        result["loss_diff"] = abs(net.forward_loss() - runners["pytorch"]())
    result.update(_alternate(runners, rounds, 1))
    net.close()
    return result


def _onnx_runner(net: Net, threads: int) -> Callable[[], Any] | None:
    try:
        import onnxruntime as ort  # an optional peer

        from brewnet.export import export_onnx
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(net, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: net.blobs["data"].data.copy()}
    return lambda: session.run(None, feed)[0]


def _opencv_runner(name: str, net: Net, size: int, threads: int) -> Callable[[], Any] | None:
    """OpenCV DNN on the deploy prototxt and the weights ``net`` holds, or None (and a
    message) when cv2 is not installed."""
    try:
        import cv2  # an optional peer
    except ImportError:
        print("  (OpenCV DNN skipped: cv2 is not installed)")
        return None
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        print(f"  (OpenCV DNN skipped: OpenCV {cv2.__version__} has no Caffe importer; it "
              "was removed in OpenCV 5: pip install 'opencv-python-headless<5')")
        return None
    cv2.setNumThreads(threads)
    batch = int(net.blobs["data"].shape[0])
    with tempfile.TemporaryDirectory() as tmp:
        proto, model = os.path.join(tmp, "deploy.prototxt"), os.path.join(tmp, "w.caffemodel")
        with open(proto, "w") as f:
            f.write(text_format.MessageToString(NETS[name](False, batch=batch, size=size)))
        net.save(model)
        dnn = cv2.dnn.readNetFromCaffe(proto, model)
    x = net.blobs["data"].data.copy()

    def forward() -> Any:
        dnn.setInput(x)
        return dnn.forward().reshape(batch, -1)
    return forward


def infer_block(name: str, batch: int, threads: int, rounds: int, torch: Any, size: int
                ) -> dict[str, Any]:
    set_blas_threads(threads)
    net = _net(name, False, batch, size)
    x, _ = _batch(net, 1)
    net.blobs["data"].data[...] = x
    net.forward()
    for blob in net.params["fc"]:  # logits of order 1, so the probabilities are not saturated
        blob.data /= np.abs(net.blobs["fc"].data).max()
    mine = net.forward()["prob"].copy()
    runners: dict[str, Callable[[], Any]] = {"brewnet": lambda: net.forward()}
    diffs: dict[str, float] = {}
    if torch is not None:
        torch.set_num_threads(threads)
        graph = TorchGraph(torch, net)
        tx = torch.from_numpy(x)

        def torch_forward() -> Any:
            with torch.inference_mode():
                return graph(tx)
        runners["pytorch"] = torch_forward
        torch_forward()
        diffs["pytorch"] = float(np.abs(torch_forward().numpy() - mine).max())
    onnx = _onnx_runner(net, threads)
    if onnx is not None:
        runners["onnxruntime"] = onnx
        diffs["onnxruntime"] = float(np.abs(onnx() - mine).max())
    opencv = _opencv_runner(name, net, size, threads)
    if opencv is not None:
        diffs["opencv"] = float(np.abs(opencv() - mine.reshape(len(mine), -1)).max())
        if diffs["opencv"] > 1e-4:
            raise AssertionError(f"{name}: OpenCV DNN's output differs from brewnet's by "
                                 f"{diffs['opencv']:.1e}")
        runners["opencv"] = opencv
    calls = max(1, int(8 / batch)) if not name.startswith("cifar10") else 20
    result: dict[str, Any] = dict(_alternate(runners, rounds, calls))
    result["diff"] = diffs
    net.close()
    return result


def _peak_child(which: str, name: str, size: int, batch: int) -> None:
    """Child process: three training iterations of one framework, then its peak memory."""
    set_level(1)
    torch = torch_or_none(2) if which == "torch" else None
    net = _net(name, True, batch, size)
    x, y = _batch(net, net.blobs["fc"].shape[1])
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    if torch is not None:
        step = torch_step(torch, TorchGraph(torch, net), x, y)
        net.close()
        del net
    else:
        step = brewnet_step(net)
    for _ in range(3):
        step()
    print(json.dumps({"peak_mib": peak_rss_mib()}))


def peak(which: str, name: str, size: int, batch: int) -> float | None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.modern", "--peak", which,
                          "--nets", name, "--size", str(size), "--batch", str(batch)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])["peak_mib"] if lines else None


def _ms(pair: tuple[float, float]) -> str:
    return f"{pair[0] * 1e3:9.1f} {pair[1] * 1e3:8.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds (default 3)")
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated: " + ",".join(NETS))
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--batches", default="1,16", help="inference batch sizes (default 1,16)")
    ap.add_argument("--only", choices=("train", "infer", "peak"), help="one block only")
    ap.add_argument("--size", type=int, help="image size (default: the net's own)")
    ap.add_argument("--batch", type=int, help="training batch (default: the net's own)")
    ap.add_argument("--peak", choices=("brewnet", "torch"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = args.nets.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    if args.quick:
        args.rounds, threads, batches = 1, [1], [1]
        args.size, args.batch = args.size or 64, args.batch or 2
    if args.peak:
        _peak_child(args.peak, names[0], args.size or SIZE[names[0]],
                    args.batch or TRAIN_BATCH[names[0]])
        return 0
    set_level(1)
    torch = torch_or_none(threads[0])
    print("== Modern nets: training iteration and inference (float32) ==")
    for line in machine_lines(torch, peer=True):
        print(line)
    for name in names:
        size, batch = args.size or SIZE[name], args.batch or TRAIN_BATCH[name]
        if args.only in (None, "train"):
            print(f"{name} training, batch {batch}, {size}x{size}: ms an iteration "
                  "(best, median)")
            for t in threads:
                r = train_block(name, t, args.rounds, torch, size, batch)
                line = f"  {t} thread(s)  brewnet {_ms(r['brewnet'])}"
                if "pytorch" in r:
                    line += (f"   pytorch {_ms(r['pytorch'])}   ratio "
                             f"{r['pytorch'][0] / r['brewnet'][0]:.2f}x"
                             f"   |loss diff| {r['loss_diff']:.1e}")
                print(line, flush=True)
        if args.only in (None, "infer"):
            print(f"{name} inference: ms a batch (best, median); ratio = peer time / "
                  "brewnet time")
            for t in threads:
                for b in batches:
                    r = infer_block(name, b, t, args.rounds, torch, size)
                    line = f"  {t} thread(s) batch {b:>3}  brewnet {_ms(r['brewnet'])}"
                    for peer in ("pytorch", "onnxruntime", "opencv"):
                        if peer in r:
                            line += (f"   {peer} {_ms(r[peer])} "
                                     f"{r[peer][0] / r['brewnet'][0]:.2f}x "
                                     f"(diff {r['diff'][peer]:.0e})")
                    print(line, flush=True)
        if args.only in (None, "peak") and not args.quick:
            mine = peak("brewnet", name, size, batch)
            theirs = peak("torch", name, size, batch) if torch is not None else None
            mib = [f"{v:,.0f}" if v is not None else "not measured" for v in (mine, theirs)]
            print(f"{name} training peak MiB: brewnet {mib[0]}  pytorch {mib[1]}", flush=True)
        gain = second_core_reading() if max(threads) > 1 else None
        if gain is not None:  # this VM's second vCPU comes and goes: say how it stood
            print(f"{name}: second core {gain:.2f} after its rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
