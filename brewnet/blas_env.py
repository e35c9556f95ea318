"""OpenBLAS's kernel choice, made before NumPy loads OpenBLAS (which reads it only then).

On AMD Zen 4 (family 25 with AVX-512) OpenBLAS picks its SkylakeX kernels, whose 512-bit
instructions Zen 4 executes as two 256-bit halves; its Haswell (AVX2) kernels ran brewnet's
convolution GEMMs faster there: a CIFAR-10 quick training iteration 8% faster, ResNet-50 and
CaffeNet inference at batch 16 1-6% and 1-9% (alternated processes, one thread; square 1024
GEMMs 110 against 93 GFLOP/s; benchmarks/README.md). So on Zen 4 ``import brewnet`` sets
``OPENBLAS_CORETYPE=Haswell``, unless the user set the variable (their choice wins,
``OPENBLAS_CORETYPE=SkylakeX`` undoes this) or NumPy is loaded already (too late: a script
that imports NumPy before brewnet keeps OpenBLAS's own choice). ``brewnet/__init__`` imports
this module before any module that imports NumPy; importing it makes the choice. Other CPUs,
and NumPy builds on another BLAS (which ignore the variable), are left as they are.

Child processes inherit the variable, and a launcher may carry it to another machine (MPICH's
mpiexec passes the environment on), where forced kernels the CPU lacks would crash. So
brewnet marks its own choice (``BREWNET_OPENBLAS_CORETYPE``) and a process that finds its
mark decides again for its own CPU, removing the choice where it does not apply.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

VARIABLE = "OPENBLAS_CORETYPE"
MARK = "BREWNET_OPENBLAS_CORETYPE"  # the value brewnet set VARIABLE to, not the user
_ZEN4_KERNELS = "Haswell"


def cpu_fields(cpuinfo: str) -> dict[str, str]:
    """The fields of the first processor's block of ``cpuinfo`` (the text of /proc/cpuinfo),
    which describes them all."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def avx512_width(cpuinfo: str) -> int:
    """The width at which the CPU ``cpuinfo`` (the text of /proc/cpuinfo) describes runs
    AVX-512: 0 without it, 256 on AMD family 25 (Zen 4, two halves a 512-bit operation),
    else 512."""
    fields = cpu_fields(cpuinfo)
    if "avx512f" not in fields.get("flags", "").split():
        return 0
    zen4 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    return 256 if zen4 else 512


def preferred_coretype(cpuinfo: str) -> str | None:
    """The OpenBLAS core type brewnet prefers for the CPU ``cpuinfo`` (the text of
    /proc/cpuinfo) describes: Haswell on AMD family 25 with AVX-512 (Zen 4), else None."""
    return _ZEN4_KERNELS if avx512_width(cpuinfo) == 256 else None


def choose_coretype(environ: MutableMapping[str, str], modules: Mapping[str, object],
                    cpuinfo: str) -> str | None:
    """Set ``environ[OPENBLAS_CORETYPE]`` (and the mark) to the preferred core type when NumPy
    is not in ``modules`` yet and the variable is unset or holds brewnet's own earlier choice,
    removing such an inherited choice where this CPU has none; return what was set (None:
    nothing)."""
    inherited = VARIABLE in environ and environ.get(MARK) == environ[VARIABLE]
    if "numpy" in modules or (VARIABLE in environ and not inherited):
        return None
    coretype = preferred_coretype(cpuinfo)
    if coretype is not None:
        environ[VARIABLE] = environ[MARK] = coretype
    elif inherited:
        del environ[VARIABLE], environ[MARK]
    return coretype


def read_cpuinfo() -> str:
    """The start of /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read(1 << 16)  # the first processor's block is all that is read
    except OSError:  # not Linux
        return ""


chosen = choose_coretype(os.environ, sys.modules, read_cpuinfo())
