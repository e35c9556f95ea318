"""What the figures depend on: the CPU, the BLAS NumPy calls and its thread count, the peer's
version, and the process's peak memory. Shared by every benchmark."""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from brewnet import blas_env, cores
from brewnet.cores import blas_symbol, blas_text
from brewnet.cores import set_blas_threads as set_blas_threads  # the benchmarks' setter
from brewnet.tools.device_query import blas_kernels


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (OpenBLAS asked directly; else OMP_NUM_THREADS or the CPU
    count, which is OpenBLAS's default)."""
    threads = cores.blas_threads()
    if threads is not None:
        return threads
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def blas_config() -> str:
    return blas_text("get_config") or "BLAS not identified (not OpenBLAS)"


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (a model name such as "AMD
    EPYC" covers generations whose kernels differ: family 25 is Zen 3/4, 26 Zen 5)."""
    fields = blas_env.cpu_fields(blas_env.read_cpuinfo())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def _own_corename(environ: dict[str, str]) -> str:
    """The kernels NumPy's OpenBLAS picks by itself here: asked in a child process started
    without ``OPENBLAS_CORETYPE`` (OpenBLAS reads it only when it loads)."""
    code = ("import numpy\nfrom brewnet.cores import blas_text\n"
            "name = blas_text('get_corename')\nprint(name) if name else exit(1)")
    env = {k: v for k, v in environ.items() if k not in (blas_env.VARIABLE, blas_env.MARK)}
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def blas_kernels_line(environ: dict[str, str] | None = None) -> str | None:
    """The kernels OpenBLAS runs when ``OPENBLAS_CORETYPE`` chose them, who set it (as
    ``brewnet device_query`` says) and what OpenBLAS would pick itself: the figures of
    GEMM-bound nets move with it (on AMD Zen 5, the Haswell kernels run sgemm at half the
    rate of OpenBLAS's own AVX-512 pick, while the peers use AVX-512). None when the
    variable is unset or the BLAS names no kernels."""
    environ = dict(os.environ if environ is None else environ)
    kernels = blas_kernels(environ)
    if blas_env.VARIABLE not in environ or kernels is None:
        return None
    return f"OpenBLAS kernels: {kernels}; OpenBLAS's own pick here: {_own_corename(environ)}"


def torch_or_none(threads: int) -> Any:
    """The torch module with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import torch  # the optional peer
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def second_core_gain(size: int = 1024) -> float:
    """How much faster a float32 ``size``^3 GEMM runs on two BLAS threads than on one (best
    of five each; the BLAS thread count is restored). About 2 when a second core is free;
    this VM had spells of minutes where it fell (another job, or the host taking part of a
    vCPU), and every 2-thread figure taken then was low."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    threads = blas_threads()
    best = {}
    try:
        for n in (1, 2):
            set_blas_threads(n)
            np.matmul(a, a, out=out)  # wake the pool
            times = []
            for _ in range(5):
                start = time.perf_counter()
                np.matmul(a, a, out=out)
                times.append(time.perf_counter() - start)
            best[n] = min(times)
    finally:
        set_blas_threads(threads)
    return best[1] / best[2]


def second_core_reading() -> float | None:
    """``second_core_gain()`` where it can be measured (more than one CPU, an OpenBLAS whose
    threads can be set), else None."""
    if (os.cpu_count() or 1) > 1 and blas_symbol("set_num_threads") is not None:
        return second_core_gain()
    return None


def machine_lines(torch: Any = None, peer: bool = False) -> list[str]:
    """A few lines naming the machine, for the top of each benchmark's output; ``peer``:
    the benchmark compares with PyTorch (``torch`` None when it is not installed)."""
    lines = [f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}",
             f"numpy {np.__version__} with {blas_config()}; BLAS threads {blas_threads()}"]
    kernels = blas_kernels_line()
    if kernels is not None:
        lines.append(kernels)
    gain = second_core_reading()
    if gain is not None:
        lines.append(f"second core: a 1024^3 GEMM runs {gain:.2f}x faster on 2 BLAS "
                     "threads than on 1 (1.9-2.0 with the second core free)")
    if torch is not None:
        lines.append(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}")
    elif peer:
        lines.append("torch not installed: the PyTorch columns are skipped")
    return lines


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: Linux's VmHWM, which starts afresh at exec
    (ru_maxrss does not: a child started from a large parent inherits the parent's peak);
    ru_maxrss elsewhere (KiB on Linux and BSD, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


# Seconds to wait before timing a runner: idle pool threads go on spinning for a while after
# their last task (OpenBLAS's for 2^28 cycles, about 0.1 s here; onnxruntime's and OpenMP's
# too), and on this 2-core machine a peer's spinning thread took a core from the runner timed
# after it: MobileNet v2 at batch 1 and 2 threads ran in 22-32 ms right after onnxruntime,
# 11.6 ms after this wait (onnxruntime 7.9 against 4.2 ms after brewnet).
SETTLE_S = 0.3


def settle() -> None:
    """Let the threads of whatever ran last go idle before the next runner is timed, and
    collect the garbage the runners left: Python's first full collection after the peers'
    imports and sessions came due inside a timed turn and took 50-100 ms (a turn of MobileNet
    v2's batch-1 forwards averaged 14-15 ms against 10 ms)."""
    gc.collect()
    time.sleep(SETTLE_S)


def summary(rates: list[float]) -> tuple[float, float]:
    """(best, median) of repeated rates: the best is the figure least disturbed by other work
    on a shared machine, the median shows how noisy it was."""
    return max(rates), statistics.median(rates)
