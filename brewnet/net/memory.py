"""What a compiled net needs in memory, from the plan's shapes: data and diff of every blob,
parameters (a shared one counted once), and the solver's per-parameter arrays; and the limit
a net being built must fit in (the machine's available memory, unless overridden).

The compiler measures before it allocates: it builds a net under an
:class:`~brewnet.blob.AllocationBudget` of the available memory, so once the blobs would
exceed it they get zero-cost stand-ins of their shapes instead of arrays; the net is then
refused with the largest blobs named, having allocated at most what fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..backend import default_xp
from ..errors import NetError
from .plan import Plan

IGNORE_ENV = "BREWNET_IGNORE_MEMORY_LIMIT"
OVERRIDES = (f"--ignore-memory-limit (brewnet solve/time/test/check), "
             f"Net(..., ignore_memory_limit=True) or {IGNORE_ENV}=1")
_FLOAT = 4  # bytes of a float32 value


def available_memory() -> int | None:
    """Bytes the blobs' device can give: the GPU's free memory in GPU mode; else what the
    system can give without swapping (Linux's MemAvailable, else the free physical pages),
    or None where neither is known."""
    xp = default_xp()
    if xp is not np:
        return int(xp.cuda.runtime.memGetInfo()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(ignore: bool = False) -> int | None:
    """The bytes a net being built may need: None (no limit) when ``ignore`` or the
    environment variable IGNORE_ENV is set, else the available memory."""
    if ignore or os.environ.get(IGNORE_ENV, "") not in ("", "0"):
        return None
    return available_memory()


def size_text(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class MemoryUse:
    """Bytes a net needs, by kind, and its blobs and parameters largest first, each as
    (what, bytes of its data and diff): ``blob 'conv1' (layer conv1)``."""

    data: int = 0
    diffs: int = 0
    params: int = 0
    history: int = 0
    largest: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.data + self.diffs + self.params + self.history

    def summary(self) -> str:
        """``1.2 GiB (data 600.0 MiB, diffs 600.0 MiB, parameters 3.4 MiB, ...)``."""
        parts = [f"data {size_text(self.data)}", f"diffs {size_text(self.diffs)}",
                 f"parameters {size_text(self.params)}"]
        if self.history:
            parts.append(f"solver history {size_text(self.history)}")
        return f"{size_text(self.total)} ({', '.join(parts)})"

    def largest_text(self, count: int = 3) -> str:
        """The ``count`` largest: ``blob 'conv1' (layer conv1) 1.2 GiB, ...``."""
        return ", ".join(f"{what} {size_text(n)}" for what, n in self.largest[:count])


def net_memory(plan: Plan, history_slots: int = 0) -> MemoryUse:
    """The memory ``plan`` needs; ``history_slots``: arrays a solver keeps per learnable
    parameter (its history and scratch). Blobs are counted once however many layers share
    them (in-place tops), and a data array once however many blobs share it (a Split's
    tops hold their bottom's); a parameter shared by name holds its data once, a diff per
    user."""
    use = MemoryUse()
    seen: set[int] = set()
    arrays: set[int] = set()  # ids of the data arrays counted
    sizes: list[tuple[str, int]] = []
    for i, step in enumerate(plan.steps):
        for name, blob in zip(step.top_names, step.tops, strict=True):
            if id(blob) not in seen:
                seen.add(id(blob))
                nbytes = _FLOAT * blob.count
                own = id(blob.data) not in arrays
                arrays.add(id(blob.data))
                use.data += nbytes if own else 0
                use.diffs += nbytes
                sizes.append((f"blob '{name}' (layer {step.name})", nbytes * (1 + own)))
        slots = plan.slots[i] if i < len(plan.slots) else []
        for j, blob in enumerate(step.layer.blobs):
            shared = j < len(slots) and slots[j].owner is not None
            use.params += _FLOAT * blob.count * (1 if shared else 2)
            sizes.append((f"parameter {j} of layer {step.name}", 2 * _FLOAT * blob.count))
    use.history = history_slots * _FLOAT * sum(p.blob.count for p in plan.learnable)
    use.largest = sorted(sizes, key=lambda s: -s[1])
    return use


def memory_error(plan: Plan, use: MemoryUse, limit: int) -> NetError:
    """The error for a net that cannot fit: what it needs, what is available, its largest
    blobs, and how to override."""
    what = f"net '{plan.name}'" if plan.name else "the net"
    return NetError(f"{what} needs {use.summary()} but only {size_text(limit)} of memory is "
                    f"available; largest: {use.largest_text()}; reduce the batch size or the "
                    f"layers' sizes, or override with {OVERRIDES}", file=plan.file)
