"""OpenBLAS's kernel choice made by ``import brewnet`` (brewnet/blas_env.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from brewnet import blas_env

REPO = Path(__file__).resolve().parents[1]

_FLAGS = "fpu sse sse2 avx avx2 fma"


def _cpu(vendor: str, family: int, avx512: bool) -> str:
    flags = _FLAGS + (" avx512f avx512bw" if avx512 else "")
    return f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nflags\t\t: {flags}\n"


_ZEN4 = _cpu("AuthenticAMD", 25, True)


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    (_ZEN4, "Haswell"),                            # Zen 4
    (_cpu("AuthenticAMD", 25, False), None),       # Zen 3: OpenBLAS picks AVX2 kernels itself
    (_cpu("AuthenticAMD", 26, True), None),        # Zen 5: full-width AVX-512
    (_cpu("GenuineIntel", 6, True), None),         # Intel AVX-512
    ("", None),                                    # no /proc/cpuinfo
])
def test_preferred_coretype_is_haswell_on_zen4_only(cpuinfo, expected):
    """Only AMD family 25 with AVX-512 (Zen 4), where OpenBLAS's SkylakeX kernels ran slower
    than its Haswell ones, gets a core type."""
    assert blas_env.preferred_coretype(cpuinfo) == expected


def test_only_the_first_processor_block_is_read():
    """Later blocks (other processors, same CPU) do not override the first's fields."""
    text = _ZEN4 + "\n" + _cpu("GenuineIntel", 6, False)
    assert blas_env.preferred_coretype(text) == "Haswell"


CHOSEN = {"OPENBLAS_CORETYPE": "Haswell", "BREWNET_OPENBLAS_CORETYPE": "Haswell"}


def test_choice_is_set_only_when_unset_and_before_numpy():
    """The variable is set (and marked as brewnet's) when NumPy is not loaded and the user has
    not set it; a user's value and an already loaded NumPy are left alone."""
    env: dict[str, str] = {}
    assert blas_env.choose_coretype(env, {}, _ZEN4) == "Haswell"
    assert env == CHOSEN
    env = {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert blas_env.choose_coretype(env, {}, _ZEN4) is None
    assert env == {"OPENBLAS_CORETYPE": "SkylakeX"}
    env = {"OPENBLAS_CORETYPE": "SkylakeX", "BREWNET_OPENBLAS_CORETYPE": "Haswell"}
    assert blas_env.choose_coretype(env, {}, _ZEN4) is None  # the user changed it since
    assert env["OPENBLAS_CORETYPE"] == "SkylakeX"
    env = {}
    assert blas_env.choose_coretype(env, {"numpy": object()}, _ZEN4) is None
    assert env == {}


def test_an_inherited_choice_is_made_again_for_this_cpu():
    """A process that inherits brewnet's choice (a child, or a rank an MPI launcher started on
    another machine) keeps it on Zen 4 and drops it on a CPU it does not suit, where forced
    kernels could use instructions the CPU lacks."""
    env = dict(CHOSEN)
    assert blas_env.choose_coretype(env, {}, _ZEN4) == "Haswell"
    assert env == CHOSEN
    env = dict(CHOSEN)
    assert blas_env.choose_coretype(env, {}, _cpu("GenuineIntel", 6, False)) is None
    assert env == {}


def _corename(env: dict[str, str], numpy_first: bool) -> str:
    """The core type NumPy's OpenBLAS runs with in a fresh process that imports brewnet."""
    imports = "import numpy, brewnet" if numpy_first else "import brewnet, numpy"
    code = (f"{imports}\nfrom brewnet.cores import blas_text\n"
            "name = blas_text('get_corename')\nprint(name) if name else exit(1)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().lower()


def test_import_brewnet_sets_openblas_kernels_on_this_machine():
    """On a Zen 4 host, NumPy's OpenBLAS runs Haswell kernels after ``import brewnet``; a
    user's OPENBLAS_CORETYPE wins; NumPy imported first keeps OpenBLAS's own choice."""
    try:
        with open("/proc/cpuinfo") as f:
            expected = blas_env.preferred_coretype(f.read())
    except OSError:
        expected = None
    if expected is None:
        pytest.skip("not a CPU brewnet picks OpenBLAS kernels for")
    env = {k: v for k, v in os.environ.items() if k not in (blas_env.VARIABLE, blas_env.MARK)}
    try:
        chosen = _corename(env, numpy_first=False)
    except subprocess.CalledProcessError:
        pytest.skip("NumPy's BLAS is not an OpenBLAS that names its core")
    assert chosen == expected.lower()
    assert _corename({**env, "OPENBLAS_CORETYPE": "SkylakeX"}, numpy_first=False) == "skylakex"
    assert _corename(env, numpy_first=True) != expected.lower()
